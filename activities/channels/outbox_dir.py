"""The outbox directory: one file per message, named by its idempotency key.

The default on the embedded stack, so the demo shows exactly what would have been sent. Writing
the same key twice leaves one file: the channel is idempotent by construction.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

from activities.channels.base import Message, PermanentChannelError, TransientChannelError


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


class OutboxDirChannel:
    def __init__(self, name: str, directory: Path):
        self.name = name
        self.directory = directory

    def path_for(self, message: Message) -> Path:
        return self.directory / _safe(message.deal_id) / f"{_safe(message.key)}.json"

    def _write(self, message: Message) -> str:
        path = self.path_for(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = message.as_dict()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a message
        return str(path)

    async def send(self, message: Message) -> str:
        try:
            return await asyncio.to_thread(self._write, message)
        except PermissionError as exc:
            raise PermanentChannelError(f"outbox {self.directory} is not writable: {exc}") from exc
        except OSError as exc:
            raise TransientChannelError(f"cannot write to outbox {self.directory}: {exc}") from exc

"""The channel interface and its two kinds of failure.

A transient failure (timeout, 5xx, connection refused) is retried by Temporal with back-off; a
permanent one (bad address, 4xx, rejected recipient) is recorded and the cadence moves on. Every
message carries an idempotency key, so a channel that can deduplicate (a file name, a
Message-ID, an Idempotency-Key header) does, even in the instant between sending and recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ChannelError(Exception):
    pass


class TransientChannelError(ChannelError):
    """Worth retrying: the channel may accept the same message later."""


class PermanentChannelError(ChannelError):
    """Not worth retrying: the same message will be refused again."""


@dataclass(frozen=True)
class Message:
    key: str  # idempotency key: `<deal_id>/<effect_key>`
    deal_id: str
    kind: str
    channel: str
    recipient: str
    subject: str
    body: str

    def as_dict(self) -> dict[str, str]:
        """The message as channels that carry structured data (files, webhooks) write it."""
        return {
            "key": self.key,
            "deal_id": self.deal_id,
            "kind": self.kind,
            "channel": self.channel,
            "to": self.recipient,
            "subject": self.subject,
            "body": self.body,
        }


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> str:
        """Deliver the message; return the channel's id for it. Raise a ChannelError on failure."""
        ...

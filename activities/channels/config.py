"""Which channel backend carries which channel name, from the environment or a config file.

Definitions name channels (`email`, `phone`, ...) but never say how to reach them: definitions
are shared, credentials are not. The worker maps names to backends:

```yaml
# $DEALFLOW_CHANNELS_FILE
outbox_dir: /var/lib/dealflow/outbox      # default: $DEALFLOW_OUTBOX_DIR or .dealflow/outbox
default: outbox                           # backend for names not listed
channels:
  email: {type: smtp, host: smtp.example.com, port: 587, starttls: true,
          sender: sales@example.com, username_env: SMTP_USER, password_env: SMTP_PASSWORD}
  crm:   {type: webhook, url: https://crm.example.com/hooks/dealflow, headers: {X-Token: "..."}}
```

Secrets are read from the environment variables the file names, never from the file itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from activities.channels.base import Channel
from activities.channels.outbox_dir import OutboxDirChannel
from activities.channels.smtp import SmtpChannel
from activities.channels.webhook import WebhookChannel


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["outbox", "smtp", "webhook"]
    host: str | None = None
    port: int = 25
    sender: str = "dealflow@localhost"
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    timeout: float = 10.0
    directory: str | None = None


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outbox_dir: str | None = None
    default: Literal["outbox"] = "outbox"
    channels: dict[str, ChannelSpec] = {}


class ChannelConfigError(ValueError):
    pass


class ChannelRegistry:
    def __init__(self, config: ChannelsConfig, home: Path):
        self.outbox_dir = Path(config.outbox_dir or os.environ.get("DEALFLOW_OUTBOX_DIR") or home / "outbox")
        self._channels: dict[str, Channel] = {}
        for name, spec in config.channels.items():
            self._channels[name] = self._build(name, spec)

    def _build(self, name: str, spec: ChannelSpec) -> Channel:
        if spec.type == "outbox":
            return OutboxDirChannel(name, Path(spec.directory) if spec.directory else self.outbox_dir)
        if spec.type == "smtp":
            if not spec.host:
                raise ChannelConfigError(f"channel {name!r}: smtp needs a host")
            return SmtpChannel(
                name,
                spec.host,
                spec.port,
                sender=spec.sender,
                starttls=spec.starttls,
                username=os.environ.get(spec.username_env) if spec.username_env else None,
                password=os.environ.get(spec.password_env) if spec.password_env else None,
                timeout=spec.timeout,
            )
        if not spec.url:
            raise ChannelConfigError(f"channel {name!r}: webhook needs a url")
        return WebhookChannel(name, spec.url, headers=spec.headers, timeout=spec.timeout)

    def get(self, name: str) -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = OutboxDirChannel(name, self.outbox_dir)
            self._channels[name] = channel
        return channel


def load_channels(home: Path, path: str | None = None) -> ChannelRegistry:
    source = path or os.environ.get("DEALFLOW_CHANNELS_FILE")
    if not source:
        return ChannelRegistry(ChannelsConfig(), home)
    try:
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
        return ChannelRegistry(ChannelsConfig.model_validate(data), home)
    except (OSError, yaml.YAMLError) as exc:
        raise ChannelConfigError(f"cannot read channel config {source}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ChannelConfigError(f"channel config {source}: {problems}") from exc

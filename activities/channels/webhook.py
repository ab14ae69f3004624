"""An HTTP webhook (a CRM, a dialler, a chat tool), with httpx.

5xx, 429 and network errors are transient; other 4xx are permanent. The idempotency key goes in
an `Idempotency-Key` header for receivers that deduplicate.
"""

from __future__ import annotations

import httpx

from activities.channels.base import Message, PermanentChannelError, TransientChannelError


class WebhookChannel:
    def __init__(self, name: str, url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0):
        self.name = name
        self.url = url
        self.headers = headers or {}
        self.timeout = timeout

    async def send(self, message: Message) -> str:
        payload = message.as_dict()
        headers = {**self.headers, "Idempotency-Key": message.key}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.post(self.url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientChannelError(f"webhook {self.url} unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientChannelError(f"webhook {self.url} answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentChannelError(
                f"webhook {self.url} refused the message: {response.status_code} {response.text[:200]}"
            )
        return response.headers.get("X-Message-Id") or f"{response.status_code}:{message.key}"

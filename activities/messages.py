"""Sending a message at most once: the outbox table guards every touch and notification.

The row `(deal_id, effect_key)` is locked while the channel sends and marked sent in the same
transaction, so a retried activity (worker crash, timeout, lost reply) finds the message sent and
does not send it again. The one window left, a crash after the channel accepted but before the
commit, is closed by the channels themselves: each gets the key to deduplicate on.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.base import Message, PermanentChannelError, TransientChannelError
from activities.channels.config import ChannelRegistry
from definitions.templates import MissingValues, TemplateError
from domain.activity_io import SEND_MESSAGE, OutgoingMessage, SentMessage
from domain.touches import touch_text

_CLAIM = """
INSERT INTO outbox (deal_id, effect_key, kind, channel, recipient, subject, body, cadence_run, touch_no)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (deal_id, effect_key) DO NOTHING
"""


async def _claim(conn: asyncpg.pool.PoolConnectionProxy, msg: OutgoingMessage) -> None:
    """The message's outbox row, created pending unless it exists already."""
    await conn.execute(
        _CLAIM,
        msg.deal_id,
        msg.effect_key,
        msg.kind,
        msg.channel,
        msg.recipient,
        msg.subject,
        msg.body,
        msg.cadence_run,
        msg.touch_no,
    )


def written(msg: OutgoingMessage) -> OutgoingMessage:
    """The message with its subject and body, rendering a touch's template when it comes as one.

    Raises:
        ApplicationError: non-retryable, type `UnrenderableTouch`: the template is malformed or a
            placeholder has no value (details: `{"missing": [...]}`); rendering again would give
            the same answer, so the cadence records the touch as failed and goes on.
    """
    if msg.touch_template is None:
        return msg
    try:
        text = touch_text(msg.touch_template, msg.template_values)
    except TemplateError as exc:
        missing = exc.missing if isinstance(exc, MissingValues) else []
        why = " (facts not recorded when the cadence started, or fields the deal has not set)" if missing else ""
        raise ApplicationError(
            f"touch {msg.touch_no} not sent: cannot render {msg.touch_template!r}: {exc}{why}",
            {"missing": missing},
            type="UnrenderableTouch",
            non_retryable=True,
        ) from exc
    return msg.model_copy(update={"subject": text.subject, "body": text.body})


class MessageActivities:
    def __init__(self, pool: asyncpg.Pool, channels: ChannelRegistry):
        self._pool = pool
        self._channels = channels

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, msg: OutgoingMessage) -> SentMessage:
        msg = written(msg)
        channel = self._channels.get(msg.channel)
        message = Message(
            key=f"{msg.deal_id}/{msg.effect_key}",
            deal_id=msg.deal_id,
            kind=msg.kind,
            channel=msg.channel,
            recipient=msg.recipient,
            subject=msg.subject,
            body=msg.body,
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await _claim(conn, msg)
                row = await conn.fetchrow(
                    "SELECT status, message_id FROM outbox WHERE deal_id = $1 AND effect_key = $2 FOR UPDATE",
                    msg.deal_id,
                    msg.effect_key,
                )
                assert row is not None
                if row["status"] == "sent":
                    return SentMessage(message_id=row["message_id"], already_sent=True)
                message_id = await channel.send(message)
                await conn.execute(
                    "UPDATE outbox SET status = 'sent', message_id = $3, sent_at = now(), attempts = attempts + 1,"
                    " last_error = NULL WHERE deal_id = $1 AND effect_key = $2",
                    msg.deal_id,
                    msg.effect_key,
                    message_id,
                )
        except PermanentChannelError as exc:
            await self._record_failure(msg, "failed", str(exc))
            raise ApplicationError(str(exc), type="PermanentChannelError", non_retryable=True) from exc
        except TransientChannelError as exc:
            await self._record_failure(msg, "retrying", str(exc))
            raise ApplicationError(str(exc), type="TransientChannelError") from exc
        activity.logger.info("sent %s via %s to %s", message.key, msg.channel, msg.recipient)
        return SentMessage(message_id=message_id)

    async def _record_failure(self, msg: OutgoingMessage, status: str, error: str) -> None:
        async with self._pool.acquire() as conn:
            await _claim(conn, msg)
            await conn.execute(
                "UPDATE outbox SET status = $3, last_error = $4, attempts = attempts + 1"
                " WHERE deal_id = $1 AND effect_key = $2 AND status <> 'sent'",
                msg.deal_id,
                msg.effect_key,
                status,
                error[:2000],
            )

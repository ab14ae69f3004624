"""E-mail through SMTP, with the standard library (in a thread, so the worker's loop stays free).

The Message-ID is derived from the idempotency key, so a receiving system can drop the duplicate
a crash between the server's acceptance and our record would cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from activities.channels.base import Message, PermanentChannelError, TransientChannelError


class SmtpChannel:
    def __init__(
        self,
        name: str,
        host: str,
        port: int = 25,
        *,
        sender: str = "dealflow@localhost",
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ):
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout

    def message_id(self, message: Message) -> str:
        digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        return f"<{digest}@dealflow>"

    def _send(self, message: Message) -> str:
        if "@" not in message.recipient:
            raise PermanentChannelError(f"{message.recipient!r} is not an e-mail address")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = self.message_id(message)
        mail["X-Dealflow-Key"] = message.key
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
            raise PermanentChannelError(f"SMTP {self.host}:{self.port} refused the message: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentChannelError(
                    f"SMTP {self.host}:{self.port}: {exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            raise TransientChannelError(f"SMTP {self.host}:{self.port}: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientChannelError(f"SMTP {self.host}:{self.port} unreachable: {exc}") from exc
        return str(mail["Message-ID"])

    async def send(self, message: Message) -> str:
        return await asyncio.to_thread(self._send, message)

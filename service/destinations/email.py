"""E-mail: the files as attachments to the integration's `to` list, through the service's SMTP relay."""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from service.destinations.base import Destination, Job
from service.planning.payloads import email_subject
from service.settings import Settings
from service.validation import split_addresses


class SmtpRelay:
    """One connection to the service's SMTP server, shared by e-mail deliveries and notifications."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.smtp_cafile) if s.smtp_cafile else None)
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            tls_context=context,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() or None,
            timeout=s.destination_timeout_seconds,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send on the open connection; reconnect once if the server dropped it meanwhile."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None or not self._client.is_connected:
                        self._client = self._new_client()
                        await self._client.connect()
                    await self._client.send_message(message)
                    return
                except aiosmtplib.SMTPServerDisconnected:
                    self._client = None
                    if attempt == 2:
                        raise

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.quit()
            except aiosmtplib.SMTPException:
                self._client.close()
        self._client = None


class EmailDestination(Destination):
    def __init__(self, settings: dict[str, Any], allow_private: bool, relay: SmtpRelay, sender: str) -> None:
        super().__init__(settings, allow_private)
        self.relay = relay
        self.sender = sender

    async def deliver(self, job: Job) -> int:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(split_addresses(str(self.settings["to"])))
        message["Subject"] = email_subject(str(self.settings.get("subject-prefix", "")), job.command)
        message.set_content(
            f"The files of {message['Subject']} are attached ({len(job.files)} files).\n"
            f"Delivery {job.command.deliveryId}.\n"
        )
        for file in job.files:
            maintype, _, subtype = file.mime_type.partition("/")
            data = await asyncio.to_thread(file.path.read_bytes)
            message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=file.name)
        await self.relay.send(message)
        return job.total_bytes

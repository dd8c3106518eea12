"""E-mail: the files as attachments to the integration's `to` list, through the service's SMTP relay."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

from service.destinations.base import Destination, Job
from service.planning.payloads import email_subject
from service.smtp_relay import SmtpRelay
from service.validation import split_addresses


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

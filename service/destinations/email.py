"""E-mail: the files as attachments to the integration's `to` list, through the service's SMTP relay.

Attachments are base64 in the message, a third larger than the files, and the relay takes the whole
message at once: e-mail is for small deliveries, bounded by OUTBOUND_MAX_EMAIL_BYTES (files in all).
The download stops as soon as a delivery is over it, and the message is built and encoded in a
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

from service.delivery_errors import PermanentDeliveryError
from service.destinations.base import Destination, Job, TotalLimit, checked_name
from service.netpolicy import NetPolicy
from service.planning.payloads import email_subject, email_too_large
from service.smtp_relay import SmtpRelay
from service.validation import split_addresses


class EmailDestination(Destination):
    def __init__(
        self, settings: dict[str, Any], policy: NetPolicy, relay: SmtpRelay, sender: str, max_bytes: int
    ) -> None:
        super().__init__(settings, policy)
        self.relay = relay
        self.sender = sender
        self.max_bytes = max_bytes

    def total_limit(self) -> TotalLimit:
        return TotalLimit(self.max_bytes, self.too_large)

    def too_large(self, size: int) -> PermanentDeliveryError:
        return PermanentDeliveryError(email_too_large(size, self.max_bytes))

    async def deliver(self, job: Job) -> int:
        if job.total_bytes > self.max_bytes:
            raise self.too_large(job.total_bytes)
        recipients = split_addresses(str(self.settings["to"]))
        data = await asyncio.to_thread(self.build, job, recipients)
        await self.relay.send_bytes(self.sender, recipients, data)
        return job.total_bytes

    def build(self, job: Job, recipients: list[str]) -> bytes:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = email_subject(str(self.settings.get("subject-prefix", "")), job.command)
        message.set_content(
            f"The files of {message['Subject']} are attached ({len(job.files)} files).\n"
            f"Delivery {job.command.deliveryId}.\n"
        )
        for file in job.files:
            maintype, _, subtype = file.mime_type.partition("/")
            message.add_attachment(
                file.path.read_bytes(),
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=checked_name(file.name),
            )
        return message.as_bytes()

"""E-mail: the files as attachments to the integration's `to` list, through the service's SMTP relay.

Attachments are base64 in the message, a third larger than the files: e-mail is for small deliveries,
bounded by OUTBOUND_MAX_EMAIL_BYTES (files in all). The download stops as soon as a delivery is over
it. The message is written to the delivery's spool folder in a thread, a block of each file at a
time, then streamed to the relay: neither the files nor the message are ever whole in memory, and
nothing is encoded on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import re
import uuid
from collections.abc import Mapping
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from typing import Any, BinaryIO

from service.delivery_errors import PermanentDeliveryError
from service.destinations.base import Destination, Job, LocalFile, TotalLimit, checked_name
from service.destinations.options import EmailOptions
from service.netpolicy import NetPolicy
from service.planning.payloads import email_subject, email_too_large
from service.smtp_relay import SmtpRelay
from service.validation import split_addresses

# base64 turns 57 bytes into one 76-character line: blocks of whole lines.
ENCODE_BLOCK = 57 * 4096


class EmailDestination(Destination[EmailOptions]):
    options_model = EmailOptions

    def __init__(
        self, options: Mapping[str, Any], policy: NetPolicy, relay: SmtpRelay, sender: str, max_bytes: int
    ) -> None:
        super().__init__(options, policy)
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
        names = [checked_name(file.name) for file in job.files]
        recipients = split_addresses(self.options.to)
        subject = email_subject(self.options.subject_prefix, job.command)
        path = job.files[0].path.parent / f".message-{uuid.uuid4().hex}.eml"
        try:
            await asyncio.to_thread(self.write, path, job, names, recipients, subject)
            await self.relay.send_file(self.sender, recipients, path)
        finally:
            path.unlink(missing_ok=True)
        return job.total_bytes

    def write(self, path: Path, job: Job, names: list[str], recipients: list[str], subject: str) -> None:
        boundary = f"=_outbound_{uuid.uuid4().hex}"
        head = EmailMessage(policy=email.policy.SMTP)
        head["From"] = self.sender
        head["To"] = ", ".join(recipients)
        head["Subject"] = subject
        head["MIME-Version"] = "1.0"
        head["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
        text = MIMEPart(policy=email.policy.SMTP)
        text.set_content(
            f"The files of {subject} are attached ({len(job.files)} files).\nDelivery {job.command.deliveryId}.\n"
        )
        with path.open("wb") as out:
            out.write(_dot_safe(_headers(head)))
            out.write(f"--{boundary}\r\n".encode())
            out.write(_dot_safe(text.as_bytes()))
            for file, name in zip(job.files, names, strict=True):
                out.write(f"\r\n--{boundary}\r\n".encode())
                _write_attachment(out, file, name)
            out.write(f"\r\n--{boundary}--\r\n".encode())


def _write_attachment(out: BinaryIO, file: LocalFile, name: str) -> None:
    part = MIMEPart(policy=email.policy.SMTP)
    maintype, _, subtype = file.mime_type.partition("/")
    part["Content-Type"] = f"{maintype}/{subtype or 'octet-stream'}"
    part.add_header("Content-Disposition", "attachment", filename=name)
    part["Content-Transfer-Encoding"] = "base64"
    out.write(_dot_safe(_headers(part)))
    with file.path.open("rb") as source:
        while block := source.read(ENCODE_BLOCK):
            # base64 lines never start with a dot, so they need no SMTP dot-stuffing.
            out.write(base64.encodebytes(block).replace(b"\n", b"\r\n"))


def _headers(part: MIMEPart) -> bytes:
    """A part's headers and the blank line after them (its body is written separately)."""
    return b"".join(part.policy.fold_binary(name, value) for name, value in part.items()) + b"\r\n"


def _dot_safe(data: bytes) -> bytes:
    """SMTP ends a message at a line holding only a dot: a line starting with one gets another."""
    return re.sub(rb"(?m)^\.", b"..", data)

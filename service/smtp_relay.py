"""The service's SMTP relay: a small pool of connections shared by e-mail deliveries and notifications.

A pool, not one connection: one slow message (a large attachment, a relay that stalls) must not
hold every other e-mail delivery and notification behind it. Every message has a deadline; a
connection that missed it, or failed in any other way, is dropped and the next message opens a
fresh one instead of writing into a connection in an unknown state.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from service.settings import Settings


class SmtpRelay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.destination_timeout_seconds
        # Idle connections (None: a place in the pool with no open connection yet); no connection is
        # opened before the first message, so a relay that is down at start does not stop the worker.
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(settings.smtp_connections):
            self._idle.put_nowait(None)

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
            timeout=min(self.timeout, 30.0),
        )

    async def send(self, message: EmailMessage) -> None:
        """Send on an idle connection; reconnect once if the server had dropped it meanwhile."""
        await self._send(lambda client: client.send_message(message))

    async def send_file(self, sender: str, recipients: list[str], path: Path) -> None:
        """A message written to disk with CRLF line endings and no line starting with a dot (as
        `destinations/email.py` writes it), streamed to the relay a block at a time: aiosmtplib's own
        DATA takes a message whole and copies it three times, so a large one would sit in memory."""
        await self._send(lambda client: _stream_message(client, sender, recipients, path, self.timeout))

    async def _send(self, sending: Callable[[aiosmtplib.SMTP], Awaitable[Any]]) -> None:
        client = await self._idle.get()
        try:
            for attempt in (1, 2):
                try:
                    if client is None or not client.is_connected:
                        client = self._new_client()
                        await client.connect()
                    await asyncio.wait_for(sending(client), self.timeout)
                    return
                except aiosmtplib.SMTPServerDisconnected:
                    client = None
                    if attempt == 2:
                        raise
                except BaseException:
                    if client is not None:
                        client.close()
                    client = None
                    raise
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()


STREAM_BLOCK = 256 * 1024


async def _stream_message(
    client: aiosmtplib.SMTP, sender: str, recipients: list[str], path: Path, timeout: float
) -> None:
    await client.mail(sender)
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in recipients:
        try:
            await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            refused.append(exc)
    if len(refused) == len(recipients):
        raise aiosmtplib.SMTPRecipientsRefused(refused)
    start = await client.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost")
    with path.open("rb") as source:
        while block := await asyncio.to_thread(source.read, STREAM_BLOCK):
            protocol.write(block)
            # Wait while the transport's buffer is over its high-water mark (the relay reads slower).
            await protocol._drain_helper()
    protocol.write(b".\r\n")
    done = await protocol.read_response(timeout=timeout)
    if done.code != 250:
        raise aiosmtplib.SMTPDataError(done.code, done.message)

"""Sending notification e-mails. (Delivery status: service/streams/status.py.)"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import orjson
from faust.types import StreamT
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_exponential

from service.app import app, notifications_topic, settings
from service.streams.rejects import handle_each
from service.streams.runtime import runtime

log = logging.getLogger(__name__)
NOTIFICATION_ATTEMPTS = 3


@app.agent(notifications_topic)
async def send_notifications(stream: StreamT[Any]) -> None:
    await handle_each(stream, send_notification_event)


async def send_notification_event(event: Any) -> None:
    await send_notification(orjson.loads(event.value))


async def send_notification(doc: dict[str, Any]) -> None:
    """A bounded number of tries, then logged as lost: a notification never loops."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(doc["to"])
    message["Subject"] = doc["subject"]
    message.set_content(doc["body"])
    try:
        async for try_ in AsyncRetrying(
            stop=stop_after_attempt(NOTIFICATION_ATTEMPTS), wait=wait_exponential(multiplier=0.5, max=10), reraise=False
        ):
            with try_:
                await runtime().relay.send(message)
    except RetryError as exc:
        log.error(
            "notification lost",
            extra={
                "deliveryId": doc.get("deliveryId"),
                "kind": doc.get("kind"),
                "error": type(exc.last_attempt.exception()).__name__,
            },
        )
        return
    except aiosmtplib.SMTPException:  # pragma: no cover - reraise=False makes RetryError the only escape
        return
    log.info("notification sent", extra={"deliveryId": doc.get("deliveryId"), "kind": doc.get("kind")})

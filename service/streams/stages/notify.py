"""Sending notification e-mails. (Delivery status: service/streams/stages/order_view.py.)"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import orjson
from faust.types import StreamT
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from service import metrics
from service.app import app, notifications_topic, settings
from service.planning.payloads import header_text
from service.streams.machinery.concurrency import handle_concurrently, idle
from service.streams.machinery.runtime import runtime

log = logging.getLogger(__name__)


@app.agent(notifications_topic)
async def send_notifications(stream: StreamT[Any]) -> None:
    # Concurrent, acknowledged in order: a notification waiting out a relay outage stays on its topic.
    await handle_concurrently(
        stream,
        send_notification_event,
        name="notify",
    )


async def send_notification_event(event: Any) -> None:
    await send_notification(orjson.loads(event.value))


async def idle_sleep(seconds: float) -> None:
    with idle():
        await asyncio.sleep(seconds)


async def send_notification(doc: dict[str, Any]) -> None:
    """Tried again with backoff for `notification_retry_seconds` (a relay outage passes), then recorded
    as lost: a notification never loops forever, and never stops the worker."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(doc["to"])
    message["Subject"] = header_text(str(doc["subject"]))
    message.set_content(doc["body"])
    kind = str(doc.get("kind", "unknown"))
    try:
        async for try_ in AsyncRetrying(
            retry=retry_if_exception(relay_may_recover),
            stop=stop_after_delay(settings.notification_retry_seconds),
            wait=wait_exponential(multiplier=0.5, max=60),
            sleep=idle_sleep,
            before_sleep=_log_relay_trouble,
            reraise=False,
        ):
            with try_:
                await runtime().relay.send(message)
    except RetryError as exc:
        log.error(
            "notification lost",
            extra={
                "deliveryId": doc.get("deliveryId"),
                "kind": kind,
                "error": type(exc.last_attempt.exception()).__name__,
            },
        )
        metrics.notifications_lost.labels(kind).inc()
        return
    except aiosmtplib.SMTPRecipientsRefused:
        log.error("notification lost: the relay refused every recipient", extra={"deliveryId": doc.get("deliveryId")})
        metrics.notifications_lost.labels(kind).inc()
        return
    log.info("notification sent", extra={"deliveryId": doc.get("deliveryId"), "kind": kind})
    metrics.notifications_sent.labels(kind).inc()


def relay_may_recover(exc: BaseException) -> bool:
    """An outage, a dropped connection, a stall: yes. Every recipient refused: the same next time."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return False
    return isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError)


def _log_relay_trouble(state: RetryCallState) -> None:
    failed = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "notification not sent yet; trying again",
        extra={"attempt": state.attempt_number, "error": type(failed).__name__},
    )

"""Retries and final failures.

deliveries-retry holds failed commands with the time their next attempt is due. Each one waits in
a task of its own (`concurrency.py`), so a retry due in an hour never holds back one due in five
seconds, and due retries run at once through the same slots as first attempts. Kafka keeps the
command until its attempt has finished (offsets are acknowledged in order), so a stop or a crash
while a retry waits loses nothing: it is read again and waits for the same due time. A retry is
dropped when the order was cancelled after the event being delivered. deliveries-failed turns into
failure notifications.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.types import StreamT

from service import metrics
from service.app import (
    app,
    deliveries_failed_topic,
    deliveries_retry_topic,
    notifications_topic,
    settings,
)
from service.contracts import DeliveryCommand
from service.planning.notifications import failure_notification
from service.streams.concurrency import handle_concurrently, idle
from service.streams.configs import find_integration
from service.streams.deliver import attempt, dropped_if_superseded, log_ids
from service.streams.publish import publish
from service.streams.rejects import handle_each

log = logging.getLogger(__name__)


@app.agent(deliveries_retry_topic)
async def retry_deliveries(stream: StreamT[Any]) -> None:
    await handle_concurrently(
        stream,
        retry_one,
        name="retry",
        max_in_flight=settings.max_messages_in_flight,
        grace_seconds=settings.shutdown_grace_seconds,
    )


async def retry_one(event: Any) -> None:
    command = DeliveryCommand.model_validate_json(event.value)
    if command.dueAt is not None:
        wait = (command.dueAt - datetime.now(UTC)).total_seconds()
        if wait > 0:
            waiting = metrics.retries_waiting.labels(metrics.retry_tier(command.attempt, command.seriesStart))
            waiting.inc()
            try:
                with idle():
                    await asyncio.sleep(wait)
            finally:
                waiting.dec()
    # Read after the wait: a cancellation may have arrived meanwhile.
    if await dropped_if_superseded(command):
        return
    await attempt(command)


@app.agent(deliveries_failed_topic)
async def notify_failures(stream: StreamT[Any]) -> None:
    await handle_each(stream, notify_failure)


async def notify_failure(event: Any) -> None:
    doc = orjson.loads(event.value)
    command = DeliveryCommand.model_validate(doc["command"])
    notification = failure_notification(command, await find_integration(command.integrationId), doc["reason"])
    log.error(
        "delivery failed for good",
        extra={**log_ids(command), "attempts": command.attempt},
    )
    if notification is not None:
        await publish(notifications_topic, [(command.deliveryId, notification)])

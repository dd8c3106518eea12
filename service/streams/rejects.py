"""Sending refused input to invalid-events: original bytes, where they came from, and why."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from service.app import invalid_events_topic, settings
from service.validation import Kind, M, Rejected, parse_event

log = logging.getLogger(__name__)


def invalid_event_record(
    message: Any, reasons: list[str], *, keep_value: bool = True, now: datetime | None = None
) -> dict[str, Any]:
    """The invalid-events document for one consumed message (`message` is a faust Message)."""
    return {
        "sourceTopic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": base64.b64encode(message.key).decode() if message.key is not None else None,
        "value": base64.b64encode(message.value).decode() if (message.value is not None and keep_value) else None,
        "reasons": reasons,
        "receivedAt": (now or datetime.now(UTC)).isoformat(),
    }


async def reject(message: Any, reasons: list[str], *, keep_value: bool = True) -> None:
    record = invalid_event_record(message, reasons, keep_value=keep_value)
    log.warning(
        "event refused",
        extra={
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "reasons": reasons,
        },
    )
    fut = await invalid_events_topic.send(key=message.key, value=orjson.dumps(record))
    await fut


async def guarded(event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run one message's handler; an unexpected error (a bug, or a malformed internal message) parks
    the message in invalid-events with the reason instead of losing it or killing the agent."""
    try:
        await handle(event)
    except Exception as exc:  # an agent must never die on one message
        log.exception("event handling failed", extra={"topic": event.message.topic, "offset": event.message.offset})
        await reject(event.message, [f"internal error while handling the event: {type(exc).__name__}"])


async def handle_each(stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """An agent's loop: every event through `handle`, guarded."""
    async for event in stream.events():
        await guarded(event, handle)


async def accepted(kind: Kind[M], event: Any) -> M | None:
    """The event's typed model, or None after sending it to invalid-events with its reasons."""
    parsed = parse_event(
        kind, event.key, event.value, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(parsed, Rejected):
        await reject(event.message, parsed.reasons)
        return None
    return parsed

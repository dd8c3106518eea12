"""Sending refused input to invalid-events: original bytes, where they came from, and why."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from faust.agents import current_agent
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from service import metrics
from service.app import invalid_events_topic, settings
from service.health import agent_crashed
from service.streams.machinery.publish import is_infrastructure_error, publish
from service.validation import Kind, M, Rejected, parse_event

log = logging.getLogger(__name__)
HANDLER_TRIES = 3


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
    await publish(invalid_events_topic, [(message.key, record)])
    metrics.invalid_events.labels(
        metrics.topic_label(message.topic, settings.topic_prefix), metrics.reason_class(reasons)
    ).inc()


FIRST_WAIT_SECONDS = 0.2  # then 0.4, 0.8, ... up to 10 s between tries


def _gives_up(state: RetryCallState) -> bool:
    """Broker trouble is waited out, however long; any other error is tried HANDLER_TRIES times.
    (The retry loop starts at the second try: its attempt 1 is the message's try 2.)"""
    failed = state.outcome.exception() if state.outcome is not None else None
    return not is_infrastructure_error(failed) and state.attempt_number + 1 >= HANDLER_TRIES


def _log_retry(state: RetryCallState) -> None:
    failed = state.outcome.exception() if state.outcome is not None else None
    _log_failed_try(state.attempt_number + 1, failed)


def _log_failed_try(attempt: int, failed: BaseException | None) -> None:
    log.warning(
        "event handling failed; trying the same message again",
        extra={"attempt": attempt, "error": type(failed).__name__},
    )


async def guarded(event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run one message's handler until it succeeds. Broker trouble (a leader election, a timeout) is
    not bad input: the same message is tried again, unacknowledged, until the broker answers. Only an
    error that repeats on the same bytes (a bug, or a malformed internal message) parks the message in
    invalid-events with the reason, instead of losing it or killing the agent."""
    try:
        # The first try runs bare: building the retry machinery for every message that succeeds was
        # several per cent of a busy worker's time. The tries, waits and logs are as they always were.
        await handle(event)
        return
    except Exception as exc:
        first = exc
    try:
        if not is_infrastructure_error(first) and HANDLER_TRIES <= 1:
            raise first
        _log_failed_try(1, first)
        await asyncio.sleep(FIRST_WAIT_SECONDS)
        async for try_ in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            stop=_gives_up,
            wait=wait_exponential(multiplier=2 * FIRST_WAIT_SECONDS, max=10),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with try_:
                await handle(event)
    except Exception as exc:  # an agent must never die on one message
        log.exception("event handling failed", extra={"topic": event.message.topic, "offset": event.message.offset})
        await reject(event.message, [f"internal error while handling the event: {type(exc).__name__}"])


async def handle_each(
    stream: Any, handle: Callable[[Any], Awaitable[None]], done: Callable[[Any], Awaitable[None]] | None = None
) -> None:
    """An agent's loop: every event through `handle`, guarded, acknowledged only once handled (or handed
    to `done`, which acknowledges it later). A stop in the middle of a message leaves it unacknowledged
    (Faust's own loop would ack it on the way out)."""
    with crashes_noticed():
        async for event in stream.noack().events():
            await guarded(event, handle)
            if done is None:
                event.ack()
            else:
                await done(event)


@contextmanager
def crashes_noticed() -> Iterator[None]:
    """An error that escapes an agent's loop restarts the agent (Faust); liveness counts the restarts."""
    try:
        yield
    except Exception:
        agent = current_agent()
        agent_crashed(str(getattr(agent, "name", None) or "agent"))
        raise


async def accepted(kind: Kind[M], event: Any) -> M | None:
    """The event's typed model, or None after sending it to invalid-events with its reasons."""
    parsed = parse_event(
        kind, event.key, event.value, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(parsed, Rejected):
        await reject(event.message, parsed.reasons)
        return None
    return parsed

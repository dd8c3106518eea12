"""Sending the service's own messages, waiting until the broker has them (at-least-once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from faust.exceptions import NotReady, ProducerSendError
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

log = logging.getLogger(__name__)
FIRST_WAIT_SECONDS = 0.2  # then 0.4, 0.8, ... up to 10 s between tries


# The broker refuses these for the record itself: sending it again never helps.
CONTENT_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)


def is_infrastructure_error(exc: BaseException | None) -> bool:
    """Errors of the broker connection or of the producer's state, not of the message: waiting and
    sending again helps. A producer not started yet or already stopped (Faust's `NotReady`, aiokafka's
    `ProducerClosed`, a KafkaError) is one of them: at shutdown the wait is cancelled and the message
    stays unacknowledged; it is never taken for bad input. A record the broker refuses for its size
    or form is not: it would be refused forever."""
    # Faust's producer wraps what aiokafka raises at once (a record over the size limit, say).
    if isinstance(exc, CONTENT_ERRORS) or isinstance(getattr(exc, "__cause__", None), CONTENT_ERRORS):
        return False
    return isinstance(exc, KafkaError | ProducerSendError | NotReady)


def _log_broker_trouble(state: RetryCallState) -> None:
    failed = state.outcome.exception() if state.outcome is not None else None
    log.warning("the broker refused a send; sending again", extra={"error": type(failed).__name__})


async def publish(
    topic: Any,
    items: Iterable[tuple[str | bytes | None, BaseModel | dict[str, Any] | None]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send every (key, value), with `headers` on each, and return once all are acknowledged; None is
    a tombstone. Broker trouble is waited out (the caller's message stays unacknowledged meanwhile)."""
    encoded = [(encode_key(key), encode_value(value)) for key, value in items]
    if not encoded:
        return
    try:
        # The first try runs bare: building the retry machinery for every send that succeeds was a few
        # per cent of a busy worker's time. On broker trouble the waits are as they always were.
        await _send_all(topic, encoded, headers)
        return
    except Exception as exc:
        if not is_infrastructure_error(exc):
            raise
        log.warning("the broker refused a send; sending again", extra={"error": type(exc).__name__})
    await asyncio.sleep(FIRST_WAIT_SECONDS)
    async for try_ in AsyncRetrying(
        retry=retry_if_exception(is_infrastructure_error),
        wait=wait_exponential(multiplier=2 * FIRST_WAIT_SECONDS, max=10),
        before_sleep=_log_broker_trouble,
        reraise=True,
    ):
        with try_:
            await _send_all(topic, encoded, headers)


async def _send_all(
    topic: Any, encoded: list[tuple[bytes | None, bytes | None]], headers: list[tuple[str, bytes]] | None
) -> None:
    futures = [await topic.send(key=key, value=value, headers=headers) for key, value in encoded]
    await asyncio.gather(*futures)


def encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def encode_value(value: BaseModel | dict[str, Any] | bytes | None) -> bytes | None:
    """A model or a document as JSON; None is a tombstone."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return orjson.dumps(value)

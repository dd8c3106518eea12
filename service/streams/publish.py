"""Sending the service's own messages, waiting until the broker has them (at-least-once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

log = logging.getLogger(__name__)


def is_infrastructure_error(exc: BaseException | None) -> bool:
    """Errors of the broker connection, not of the message: waiting and sending again helps."""
    return isinstance(exc, KafkaError | ProducerSendError)


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
    encoded = [(key.encode() if isinstance(key, str) else key, _encode(value)) for key, value in items]
    if not encoded:
        return
    async for try_ in AsyncRetrying(
        retry=retry_if_exception(is_infrastructure_error),
        wait=wait_exponential(multiplier=0.2, max=10),
        before_sleep=_log_broker_trouble,
        reraise=True,
    ):
        with try_:
            futures = [await topic.send(key=key, value=value, headers=headers) for key, value in encoded]
            await asyncio.gather(*futures)


def _encode(value: BaseModel | dict[str, Any] | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return orjson.dumps(value)

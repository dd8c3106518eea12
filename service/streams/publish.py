"""Sending the service's own messages, waiting until the broker has them (at-least-once)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel


async def publish(topic: Any, items: Iterable[tuple[str, BaseModel | dict[str, Any] | None]]) -> None:
    """Send every (key, value) and return once all are acknowledged; None is a tombstone."""
    futures = []
    for key, value in items:
        payload = (
            None
            if value is None
            else value.model_dump_json().encode()
            if isinstance(value, BaseModel)
            else orjson.dumps(value)
        )
        futures.append(await topic.send(key=key.encode(), value=payload))
    if futures:
        await asyncio.gather(*futures)

"""Waiting on conditions: polled until true, or until a count stops growing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(
    condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.1
) -> Any:
    """Poll `condition` (sync or async) every `every` seconds until it returns something truthy, or fail
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_for_progress(
    measure: Callable[[], Any], target: int, stall: float, what: str, every: float = 1.0, timeout: float = 3600.0
) -> int:
    """Poll the count `measure` returns (sync or async) until it reaches `target`; fail as soon as it has
    not grown for `stall` seconds (something is stuck or gone, waiting longer will not bring it), or
    after `timeout` in all, saying how far it got."""
    started = grew = time.monotonic()
    best = -1
    while True:
        count = measure()
        if asyncio.iscoroutine(count):
            count = await count
        now = time.monotonic()
        if count >= target:
            return int(count)
        if count > best:
            best, grew = count, now
        if now - grew > stall or now - started > timeout:
            why = f"nothing new for {stall:.0f}s" if now - grew > stall else f"timed out after {timeout:.0f}s"
            raise AssertionError(f"{why} waiting for {what}: {count} of {target}")
        await asyncio.sleep(every)

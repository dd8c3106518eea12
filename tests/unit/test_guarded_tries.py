"""A handler's tries: the first runs bare, the retry loop takes over only after a failure, and the
count of tries before a message is parked is unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaTimeoutError

from service.streams import rejects


@pytest.fixture
def parked(monkeypatch):
    found: list[list[str]] = []

    async def no_wait(_seconds):
        return None

    async def reject(message, reasons, **_):
        found.append(reasons)

    monkeypatch.setattr(rejects, "reject", reject)
    monkeypatch.setattr(rejects.asyncio, "sleep", no_wait)
    monkeypatch.setattr(rejects.AsyncRetrying, "sleep", staticmethod(no_wait), raising=False)
    return found


def failing(times: int, error: type[Exception] = ValueError):
    calls = []

    async def handle(_event):
        calls.append(1)
        if len(calls) <= times:
            raise error("boom")

    return handle, calls


EVENT = SimpleNamespace(message=SimpleNamespace(topic="t", offset=1))


async def test_a_message_that_succeeds_at_once_is_handled_once(parked):
    handle, calls = failing(0)
    await rejects.guarded(EVENT, handle)
    assert len(calls) == 1 and parked == []


async def test_a_message_that_fails_twice_then_succeeds_is_not_parked(parked):
    handle, calls = failing(2)
    await rejects.guarded(EVENT, handle)
    assert len(calls) == 3 and parked == []


async def test_a_message_that_always_fails_is_tried_three_times_then_parked(parked):
    handle, calls = failing(100)
    await rejects.guarded(EVENT, handle)
    assert len(calls) == rejects.HANDLER_TRIES == 3
    assert parked == [["internal error while handling the event: ValueError"]]


async def test_broker_trouble_is_tried_beyond_the_handler_limit(parked):
    handle, calls = failing(5, KafkaTimeoutError)
    await rejects.guarded(EVENT, handle)
    assert len(calls) == 6 and parked == []

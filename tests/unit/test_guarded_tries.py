"""A handler's tries: the first runs bare, the retry loop takes over only after a failure, and the
count of tries before a message is parked is unchanged. Shutdown is never bad input, and a message
that could be neither handled nor parked is never acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.exceptions import NotReady

from service.streams.machinery import concurrency, rejects
from tests.fakes import FakeEvent, FakeMessage, fake_events
from tests.waiting import wait_for


@pytest.fixture
def parked(monkeypatch):
    found: list[list[str]] = []

    yield_only = asyncio.sleep  # the waits are patched where they are looked up: asyncio's own module

    async def no_wait(_seconds):
        await yield_only(0)

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


async def test_a_stopped_producer_is_waited_out_never_taken_for_bad_input(parked):
    """Faust's `NotReady` (the producer not started, or stopped at shutdown) is the producer's state,
    not the message's: tried again, never parked."""
    handle, calls = failing(5, NotReady)
    await rejects.guarded(EVENT, handle)
    assert len(calls) == 6 and parked == []


class OneEventStream:
    """What `handle_each` needs of a Faust stream: a noack stream of events."""

    def __init__(self, events):
        self._events = events

    def noack(self):
        return self

    async def events(self):
        for event in self._events:
            yield event
        await asyncio.Event().wait()  # a stream does not end


async def test_a_message_whose_producer_stopped_for_good_is_left_unacknowledged_at_shutdown(parked):
    acked: list[tuple[str, int]] = []
    event = FakeEvent(FakeMessage("p0", 7), acked)
    handle, calls = failing(10**6, NotReady)
    agent = asyncio.create_task(rejects.handle_each(OneEventStream([event]), handle))
    await wait_for(lambda: len(calls) >= 5, 10, "the handler to be tried again")
    agent.cancel()  # the worker stops
    await asyncio.gather(agent, return_exceptions=True)
    assert acked == [] and parked == []


async def test_a_message_that_could_be_neither_handled_nor_parked_is_never_acknowledged(monkeypatch, parked):
    """A refusal that cannot be published: the task ends in an error; the message, and every later
    one of its partition, stays unacknowledged (Faust would have skipped it)."""

    async def refusal_fails(message, reasons, **_):
        raise RuntimeError("invalid-events cannot be written")

    monkeypatch.setattr(rejects, "reject", refusal_fails)
    monkeypatch.setattr(concurrency, "guarded", rejects.guarded)
    acked: list[tuple[str, int]] = []
    broken, later = fake_events("p0", range(2), acked)
    inflight = concurrency.InFlight("test")
    handle, _ = failing(10**6)
    inflight.start(broken, handle, lambda: None, None)
    inflight.start(later, failing(0)[0], lambda: None, None)
    await asyncio.wait(list(inflight.tasks), timeout=10)
    assert acked == []

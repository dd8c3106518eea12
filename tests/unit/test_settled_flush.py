"""A commit never passes a table write the broker does not have (`SettledFlushProducer`)."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer

from service import health
from service.faust_fixes import NoSkipConsumer, SettledFlushProducer
from service.health import liveness_problems


def table_write(topic: str = "app-recipes-changelog") -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.message = SimpleNamespace(channel=SimpleNamespace(get_topic_name=lambda: topic))  # type: ignore[attr-defined]
    return fut


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> SettledFlushProducer:
    """The producer with Faust's own buffer and aiokafka's flush left out: only what is added is under test."""

    async def faust_flush(self: Any) -> None:
        return None

    monkeypatch.setattr(faust_aiokafka.Producer, "flush", faust_flush)
    monkeypatch.setattr(faust_aiokafka.Producer, "send_soon", lambda self, fut: None)
    monkeypatch.setattr(health, "noticed", health.Noticed())
    made = SettledFlushProducer.__new__(SettledFlushProducer)
    made._unsettled = set()
    return made


def test_faust_s_buffer_flush_gives_up_after_a_tenth_of_a_second():
    source = inspect.getsource(ProducerBuffer.flush_atmost)
    assert (
        "timeout=0.1" in source
        and "except asyncio.TimeoutError:\n                    return flushed_messages" in source
    )


async def test_the_flush_returns_only_once_every_earlier_table_write_is_acknowledged(producer):
    writes = [table_write() for _ in range(3)]
    for fut in writes:
        producer.send_soon(fut)
    flushing = asyncio.create_task(producer.flush())
    for fut in writes[:2]:
        fut.set_result(None)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not flushing.done(), "returned with a table write still on its way"
    writes[2].set_result(None)
    await asyncio.wait_for(flushing, 1)
    assert health.noticed.lost_table_write is None and not producer._unsettled


async def test_a_refused_table_write_stops_every_later_commit_and_fails_liveness(producer):
    fut = table_write("app-orders-changelog")
    producer.send_soon(fut)
    fut.set_exception(KafkaTimeoutError())
    await asyncio.wait_for(producer.flush(), 1)
    assert health.noticed.lost_table_write == "KafkaTimeoutError on app-orders-changelog"

    consumer = NoSkipConsumer.__new__(NoSkipConsumer)
    assert await consumer._commit({}) is False
    [problem] = liveness_problems(health.noticed, [], 0.0, block_threshold=10, loop_stalled_for=0)
    assert "a table write never reached the broker (KafkaTimeoutError on app-orders-changelog)" in problem


async def test_a_write_still_unacknowledged_at_the_deadline_counts_as_lost(producer):
    producer.settle_seconds = 0.05
    producer.send_soon(table_write())
    await asyncio.wait_for(producer.flush(), 5)
    assert health.noticed.lost_table_write == "1 records unacknowledged after 0.05s"


def test_the_worker_uses_the_settled_flush_producer():
    from service.app import app

    assert isinstance(app.producer, SettledFlushProducer)

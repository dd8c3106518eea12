"""A fetch returns only records of the partitions that were active when it started
(service/faust_fixes.py), against the real broker. aiokafka's own reading of an empty set is pinned:
when it changes, the correction can go."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers import aiokafka as faust_aiokafka

from service.faust_fixes import ActiveOnlyConsumerThread
from tests.events import unique
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_partitions(kafka):
    """A consumer assigned to both partitions of a new topic, each holding a record, fetched already."""
    topic = unique("fetch-")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    await asyncio.gather(*[await producer.send(topic, b"x", partition=p) for p in (0, 1)])
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(tps)
    await consumer.seek_to_beginning()
    # Fetched in the background: both partitions' records wait in the fetcher until asked for.
    await wait_for(lambda: all(tp in consumer._fetcher._records for tp in tps), 30, "both partitions fetched")
    yield consumer, tps
    await consumer.stop()


def thread(kind: type = ActiveOnlyConsumerThread) -> Any:
    fetching = object.__new__(kind)  # only `_fetch_records` is used
    fetching.consumer = type("FaustConsumer", (), {"flow_active": True})()
    return fetching


async def test_no_active_partition_fetches_nothing_and_nothing_is_consumed(two_partitions):
    consumer, tps = two_partitions
    assert await thread()._fetch_records(consumer, set(), timeout=0.2) == {}
    assert [await consumer.position(tp) for tp in tps] == [0, 0]


@pytest.mark.parametrize("kind", [ActiveOnlyConsumerThread, faust_aiokafka.AIOKafkaConsumerThread])
async def test_a_partition_paused_while_a_fetch_waits_lets_no_other_partition_in(kafka, two_partitions, kind):
    """Faust's own thread is the pin: when it stops handing out the paused partition, the correction
    can go."""
    consumer, (first, second) = two_partitions
    fetching = thread(kind)
    assert set(await fetching._fetch_records(consumer, {first}, timeout=1)) == {first}
    active = {first}  # Faust's live set of active partitions
    waiting = asyncio.create_task(fetching._fetch_records(consumer, active, timeout=20))
    await wait_for(lambda: consumer._fetcher._fetch_waiters, 10, "the fetch to wait for records")
    active.clear()  # the last active partition paused while the fetch waits (end of a recovery)
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    await (await producer.send(first.topic, b"y", partition=first.partition))
    await producer.stop()
    records = await waiting
    if kind is ActiveOnlyConsumerThread:
        assert second not in records and await consumer.position(second) == 0
    else:
        assert second in records and await consumer.position(second) == 1  # consumed, then dropped by Faust

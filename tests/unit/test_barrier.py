"""The worker's barrier (service/streams/machinery/barrier.py): no record is acknowledged before everything it
caused is acknowledged by the broker, and acknowledgements keep the order records were held in."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from hypothesis import given, settings
from hypothesis import strategies as st

from service.streams.machinery.barrier import Barrier
from service.streams.machinery.row_cache import RowCache
from tests.fakes import FakeEvent as Event
from tests.fakes import FakeMessage as Message
from tests.fakes import fake_events as events


class Topic:
    """A topic whose sends hand back futures the test settles (as the producer's are settled by the
    broker), recording every send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.refuse_next = 0

    async def send(self, key: Any, value: Any, headers: Any = None) -> asyncio.Future[Any]:
        if self.refuse_next:
            self.refuse_next -= 1
            raise KafkaTimeoutError()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((key, value))
        self.futures.append(future)
        return future

    def settle_all(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)


class World:
    """What the barrier is wired to: the producer's flush, the group and the invalid-events topic."""

    def __init__(self) -> None:
        self.flushes = 0
        self.flush_fails = 0
        self.rebalancing = False
        self.generation = 1
        self.parked: list[tuple[int, list[str]]] = []
        self.log: list[str] = []

    async def flush(self) -> None:
        if self.flush_fails:
            self.flush_fails -= 1
            raise KafkaTimeoutError()
        self.flushes += 1
        self.log.append("flush")

    async def park(self, message: Any, reasons: list[str]) -> None:
        self.parked.append((message.offset, reasons))

    def barrier(self, *, max_held: int = 100) -> Barrier:
        return Barrier(
            settle_after=0.01,
            max_held=max_held,
            flush=self.flush,
            rebalancing=lambda: self.rebalancing,
            is_current=lambda e: e.message.generation_id == self.generation,
            park=self.park,
        )


class Table(dict[str, Any]):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append(f"write {key}")
        super().__setitem__(key, value)


async def until(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_nothing_is_acknowledged_before_every_send_of_the_round_is():
    world, topic, acked = World(), Topic(), []
    barrier = world.barrier()
    for event in events("p0", range(3), acked):
        await barrier.send(topic, "k", {"n": event.message.offset}, cause=event)
        barrier.hold(event)
    settling = asyncio.create_task(barrier.settle())
    await until(lambda: len(topic.futures) == 3)
    topic.futures[0].set_result(None)
    topic.futures[2].set_result(None)
    await asyncio.sleep(0.02)
    assert acked == [] and not settling.done(), "one send of the round is still unacknowledged"
    topic.futures[1].set_result(None)
    await asyncio.wait_for(settling, 5)
    assert acked == [("p0", 0), ("p0", 1), ("p0", 2)]


async def test_a_send_failed_on_broker_trouble_is_sent_again_and_nothing_is_acknowledged_meanwhile():
    world, topic, acked = World(), Topic(), []
    barrier = world.barrier()
    event = Event(Message("p0", 0), acked)
    await barrier.send(topic, "k", {"order": 1}, cause=event)
    barrier.hold(event)
    topic.futures[0].set_exception(KafkaTimeoutError())
    topic.refuse_next = 1  # the first send again is refused at once too
    settling = asyncio.create_task(barrier.settle())
    await until(lambda: len(topic.futures) == 2)
    assert acked == [], "the failed send is not acknowledged"
    topic.futures[1].set_result(None)
    await asyncio.wait_for(settling, 10)
    assert topic.sent == [(b"k", b'{"order":1}')] * 2, "the same record, sent again"
    assert acked == [("p0", 0)] and world.parked == []


async def test_a_send_refused_for_its_content_parks_its_record_and_the_partition_goes_on():
    world, topic, acked = World(), Topic(), []
    barrier = world.barrier()
    bad, good = events("p0", range(2), acked)
    await barrier.send(topic, "k", {"big": True}, cause=bad)
    barrier.hold(bad)
    await barrier.send(topic, "k", {"small": True}, cause=good)
    barrier.hold(good)
    topic.futures[0].set_exception(MessageSizeTooLargeError())
    topic.futures[1].set_result(None)
    await asyncio.wait_for(barrier.settle(), 5)
    assert world.parked == [(0, ["internal error while handling the event: MessageSizeTooLargeError"])]
    assert acked == [("p0", 0), ("p0", 1)]


async def test_rows_are_written_after_the_sends_and_flushed_before_the_acks():
    world, topic, acked = World(), Topic(), []
    barrier = world.barrier()
    table = Table(world.log)
    rows = barrier.cache(RowCache(table, cached=8, is_current=lambda e: True))
    event = Event(Message("p0", 0), acked)
    rows.put("order-1", {"state": "queued"}, event)
    await barrier.send(topic, "order-1", {"link": 1}, cause=event)
    barrier.hold(event)
    settling = asyncio.create_task(barrier.settle())
    await asyncio.sleep(0.02)
    assert world.log == [] and acked == [], "no row is written before the round's sends are acknowledged"
    topic.settle_all()
    await asyncio.wait_for(settling, 5)
    assert world.log[:2] == ["write order-1", "flush"] and world.log.count("write order-1") == 1
    assert acked == [("p0", 0)] and table == {"order-1": {"state": "queued"}}


async def test_a_failed_flush_acknowledges_nothing_and_the_next_round_takes_its_records_first():
    world, acked = World(), []
    barrier = world.barrier()
    first, second = events("p0", range(2), acked)
    barrier.hold(first)
    world.flush_fails = 1
    try:
        await barrier.settle()
    except KafkaTimeoutError:
        pass
    else:
        raise AssertionError("the flush should have failed")
    assert acked == []
    barrier.hold(second)
    await barrier.settle()
    assert acked == [("p0", 0), ("p0", 1)]


async def test_nothing_is_written_while_the_group_rebalances_and_no_record_of_an_old_generation_is_acked():
    world, acked = World(), []
    barrier = world.barrier()
    table = Table(world.log)
    rows = barrier.cache(RowCache(table, cached=8, is_current=lambda e: e.message.generation_id == world.generation))
    kept, moved = Event(Message("p0", 0), acked), Event(Message("p1", 0), acked)
    rows.put("kept", 1, kept)
    rows.put("moved", 2, moved)
    barrier.hold(kept)
    barrier.hold(moved)
    world.rebalancing = True
    settling = asyncio.create_task(barrier.settle())
    await asyncio.sleep(0.1)
    assert world.log == [] and acked == []
    barrier.forget({"p1"})
    world.generation = 2  # the records held were fetched before the rebalance
    world.rebalancing = False
    await asyncio.wait_for(settling, 5)
    assert table == {"kept": 1}, "the revoked partition's row is dropped; the kept one is written"
    assert acked == [], "records of an ended generation are read again from the committed offsets"


async def test_a_round_settles_on_its_own_shortly_after_a_record_is_held():
    world, acked = World(), []
    barrier = world.barrier()
    barrier.hold(Event(Message("p0", 0), acked))
    await until(lambda: acked == [("p0", 0)])


async def test_a_full_round_is_settled_before_the_stage_reads_more():
    world, topic, acked = World(), Topic(), []
    barrier = world.barrier(max_held=3)
    for event in events("p0", range(3), acked):
        await barrier.send(topic, "k", {}, cause=event)
        barrier.hold(event)
    room = asyncio.create_task(barrier.room())
    await asyncio.sleep(0.02)
    assert not room.done(), "the stage waits while three records are held"
    topic.settle_all()
    await asyncio.wait_for(room, 5)
    assert len(acked) == 3


@settings(deadline=None, max_examples=40)
@given(
    resolve_order=st.permutations(list(range(12))),
    cuts=st.sets(st.integers(min_value=1, max_value=11), max_size=4),
)
def test_acks_are_a_prefix_in_offset_order_of_records_whose_sends_all_resolved(resolve_order, cuts):
    """Whatever order the broker acknowledges sends in and wherever rounds end: every acked record's
    sends are acknowledged, and the acks are a gap-free prefix of the records in offset order."""

    async def scenario() -> None:
        world, topic, acked = World(), Topic(), []
        barrier = world.barrier(max_held=1000)
        rounds: list[asyncio.Task[None]] = []
        for event in events("p0", range(12), acked):
            await barrier.send(topic, "k", {"n": event.message.offset}, cause=event)
            barrier.hold(event)
            if event.message.offset + 1 in cuts:
                rounds.append(asyncio.create_task(barrier.settle()))
                await asyncio.sleep(0)
        rounds.append(asyncio.create_task(barrier.settle()))
        resolved: set[int] = set()
        for i in resolve_order:
            topic.futures[i].set_result(None)
            resolved.add(i)
            for _ in range(5):
                await asyncio.sleep(0)
            offsets = [o for _, o in acked]
            assert offsets == list(range(len(offsets))), "in offset order, no gap"
            assert all(o in resolved for o in offsets), "only records whose sends the broker has"
        await asyncio.wait_for(asyncio.gather(*rounds), 5)
        assert [o for _, o in acked] == list(range(12))

    asyncio.run(scenario())

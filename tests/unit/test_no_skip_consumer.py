"""No commit passes a record that no agent was handed (service/faust_fixes.py, `NoSkipConsumer`).

Faust's own consumer code runs here (`perform_seek`, `getmany`, `_drain_messages`, `ack` and the commit
computation `_filter_committable_offsets`) against a fake Kafka client: a partition's log, a position
that a fetch moves on, and a fetch that can be held. Each scenario runs on Faust's plain consumer too:
where it fails there, it pins the library behaviour the correction exists for, so the override can go
when faust-streaming changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from service.app import app, catalog
from service.faust_fixes import NoSkipConsumer

ORDERS = TP("orders", 4)
COMPACTED = TP("integrations", 0)
PLAIN, CORRECTED = faust_aiokafka.Consumer, NoSkipConsumer


def record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())


class FakeClient:
    """One partition's log as aiokafka shows it to Faust's consumer thread: a fetch returns what lies
    at the position and moves the position past it; a held fetch returns only when released."""

    def __init__(self, tp: TP, committed: int | None, offsets: list[int]) -> None:
        self.tp = tp
        self.committed = committed
        self.offsets = list(offsets)  # the log: offsets present (a hole is an offset missing)
        self.position = committed if committed is not None else (offsets[0] if offsets else 0)
        self.changed = asyncio.Event()
        self.hold: asyncio.Future[None] | None = None
        self.fetches_returned = 0
        self.during_seek: Any = None

    def produce(self, *offsets: int) -> None:
        self.offsets.extend(offsets)
        self.changed.set()

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        active = set(active_partitions or ())  # the service's thread fetches with a copy
        try:
            if self.hold is not None:
                await self.hold
                self.hold = None
            while True:
                ready = [o for o in self.offsets if o >= self.position] if self.tp in active else []
                if ready:
                    self.position = ready[-1] + 1  # aiokafka counts what it returns as consumed
                    return {self.tp: [record(self.tp, o) for o in ready]}
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout)
                except TimeoutError:
                    return {}
        finally:
            self.fetches_returned += 1

    async def seek_to_committed(self) -> dict[TP, int | None]:
        if self.committed:  # aiokafka seeks only offsets > 0
            self.position = self.committed
        if self.during_seek is not None:
            await self.during_seek()
        return {self.tp: self.committed}

    def seek(self, tp: TP, offset: int) -> None:
        self.position = offset

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.position = partitions[self.tp]

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.offsets[0] if self.offsets else 0 for tp in tps}

    def assignment(self) -> set[TP]:
        return {self.tp}

    def highwater(self, tp: TP) -> int:
        return (self.offsets[-1] + 1) if self.offsets else 0


async def nothing(*args: Any, **kwargs: Any) -> None:
    return None


class Worker:
    """Faust's consumer on the fake client, with Faust's own drain loop feeding an agent that
    acknowledges what it is handed, in order."""

    def __init__(self, consumer_class: type[faust_aiokafka.Consumer], client: FakeClient) -> None:
        self.handed: list[tuple[int, int]] = []  # (generation, offset)
        self.consumer = consumer_class(
            app.transport, callback=self.agent, on_partitions_revoked=nothing, on_partitions_assigned=nothing
        )
        self.consumer._thread = client  # type: ignore[assignment]
        self.client = client
        self.fetcher = SimpleNamespace(_stopped=asyncio.Event())
        self.drain: asyncio.Task[None] | None = None

    async def agent(self, message: Any) -> None:
        self.handed.append((message.generation_id, message.offset))
        self.consumer.ack(message)

    async def assign(self, generation: int) -> None:
        app.consumer_generation_id = generation
        await self.consumer.on_partitions_assigned({self.client.tp}, generation)

    def start(self) -> None:
        self.drain = asyncio.create_task(self.consumer._drain_messages(self.fetcher))

    async def stop(self) -> None:
        self.fetcher._stopped.set()
        self.client.changed.set()
        if self.drain is not None:
            self.drain.cancel()
            await asyncio.gather(self.drain, return_exceptions=True)

    def commit_offset(self) -> int | None:
        return self.consumer._filter_committable_offsets({self.client.tp}).get(self.client.tp)

    def offsets_handed(self, generation: int) -> set[int]:
        return {offset for g, offset in self.handed if g == generation}


@pytest.fixture(autouse=True)
def every_topic_acknowledged(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: not topic.endswith("-changelog"))
    generation = app.consumer_generation_id
    yield
    app.consumer_generation_id = generation


async def until(condition: Any, what: str, deadline: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def rebalance_with_a_stale_fetch(consumer_class: type[faust_aiokafka.Consumer]) -> Worker:
    """The issue's run, step by step: orders-4 committed at 46 is kept across a rebalance; a fetch
    issued before the revocation is still waiting; 46-50 are produced meanwhile and the stale fetch
    returns them while the recovery seeks (the partition still paused); 51 and 52 come after."""
    client = FakeClient(ORDERS, committed=46, offsets=list(range(46)))
    worker = Worker(consumer_class, client)
    consumer = worker.consumer
    await worker.assign(1)
    await consumer.perform_seek()
    worker.start()
    await until(lambda: client.fetches_returned >= 1, "the first generation to fetch")
    client.hold = asyncio.get_running_loop().create_future()  # the next fetch waits across the rebalance
    await until(lambda: client.fetches_returned >= 2, "a fetch to be in flight")
    in_flight = client.fetches_returned
    # The revocation, as Faust's app does it (every partition, eager protocol), then the new assignment.
    await consumer.on_partitions_revoked({ORDERS})
    consumer.stop_flow()
    consumer.pause_partitions({ORDERS})
    await worker.assign(2)
    consumer.pause_partitions({ORDERS})
    consumer.resume_flow()  # no changelog to restore: the recovery resumes the flow, the streams still paused

    async def stale_fetch_returns() -> None:
        client.produce(46, 47, 48, 49, 50)
        assert client.hold is not None
        client.hold.set_result(None)
        await until(lambda: client.fetches_returned > in_flight, "the stale fetch to return")
        for _ in range(20):  # Faust's getmany works through what it returned
            await asyncio.sleep(0)

    client.during_seek = stale_fetch_returns
    await consumer.perform_seek()
    client.during_seek = None
    consumer.resume_partitions({ORDERS})
    client.produce(51, 52)
    await until(lambda: 52 in worker.offsets_handed(2), "offset 52 handed to the agent")
    await worker.stop()
    return worker


async def test_faust_commits_past_records_a_stale_fetch_dropped():
    """The loss itself, in faust-streaming 0.15.3: if this fails, Faust changed (see faust_fixes.py)."""
    worker = await rebalance_with_a_stale_fetch(PLAIN)
    assert worker.offsets_handed(2) == {51, 52}
    assert worker.commit_offset() == 52  # past 46-50, which were never handed to an agent (as in the issue)


async def test_no_commit_passes_a_record_a_stale_fetch_dropped():
    worker = await rebalance_with_a_stale_fetch(CORRECTED)
    commit = worker.commit_offset()
    assert commit is not None
    assert set(range(46, commit)) <= worker.offsets_handed(2)
    assert worker.offsets_handed(2) == set(range(46, 53))


async def jump(consumer_class: type[faust_aiokafka.Consumer], tp: TP, offsets: list[int]) -> Worker:
    """A partition committed at 10 whose log holds `offsets` from there."""
    client = FakeClient(tp, committed=10, offsets=list(range(10)) + offsets)
    worker = Worker(consumer_class, client)
    await worker.assign(1)
    await worker.consumer.perform_seek()
    worker.start()
    await until(lambda: max(offsets) in worker.offsets_handed(1), f"offset {max(offsets)} handed out")
    await worker.stop()
    return worker


async def test_a_jump_on_a_compacted_topic_is_a_gap_that_needs_the_record_after_it_acknowledged():
    integrations = TP(catalog["integrations"].name, 0)
    assert integrations.topic in app.compacted_topics
    client = FakeClient(integrations, committed=10, offsets=[*range(10), 15])
    worker = Worker(CORRECTED, client)
    taken: list[Any] = []

    async def slow_agent(message: Any) -> None:  # takes the record, acknowledges it later
        worker.handed.append((message.generation_id, message.offset))
        taken.append(message)

    worker.consumer.callback = slow_agent
    await worker.assign(1)
    await worker.consumer.perform_seek()
    worker.start()
    await until(lambda: 15 in worker.offsets_handed(1), "offset 15 handed out")
    assert client.fetches_returned == 1  # a compacted log's hole is not read again
    assert worker.commit_offset() is None  # the hole 10-14 alone commits nothing: 15 is not done
    worker.consumer.ack(taken.pop())
    assert worker.commit_offset() == 16
    await worker.stop()


async def test_a_jump_on_another_topic_is_read_again_and_accepted_only_when_it_is_really_a_hole():
    """A hole in a non-compacted log (a transaction marker, retention) is seen twice from the same
    start: the partition is sought back once, then the jump is accepted and commits."""
    worker = await jump(CORRECTED, ORDERS, [12, 13])
    assert worker.offsets_handed(1) == {12, 13}
    assert worker.client.fetches_returned >= 2  # read again from 10 before accepting the hole
    assert worker.commit_offset() == 14


async def test_a_record_handed_twice_after_a_seek_back_is_acknowledged_once():
    worker = await jump(CORRECTED, ORDERS, [10, 11, 12])
    assert worker.offsets_handed(1) == {10, 11, 12}
    assert worker.commit_offset() == 13


def consumer_with_acks(consumer_class: type[faust_aiokafka.Consumer], committed: int) -> Any:
    consumer = consumer_class(
        app.transport, callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    consumer._committed_offset[ORDERS] = committed
    return consumer


class Acked:
    """What `Consumer.ack` reads of a message."""

    def __init__(self, offset: int, generation: int) -> None:
        self.topic, self.tp, self.offset = ORDERS.topic, ORDERS, offset
        self.generation_id, self.acked = generation, False


def message(offset: int, generation: int) -> Any:
    return Acked(offset, generation)


@pytest.mark.parametrize(("consumer_class", "commit"), [(PLAIN, 48), (CORRECTED, None)])
def test_the_commit_waits_for_the_committed_offset_itself(consumer_class, commit):
    """Committed 46 (the next offset to read), 46 in flight, 47 acknowledged: Faust's head check
    `min(acked) - committed > 1` commits 48."""
    app.consumer_generation_id = 3
    consumer = consumer_with_acks(consumer_class, committed=46)
    consumer.ack(message(47, generation=3))
    assert consumer._filter_committable_offsets({ORDERS}).get(ORDERS) == commit


@pytest.mark.parametrize(("consumer_class", "counted"), [(PLAIN, True), (CORRECTED, False)])
def test_an_acknowledgement_from_an_ended_generation_is_not_counted(consumer_class, counted):
    """Faust's streams acknowledge the records they skip because their generation ended; the record
    is read again in the new generation and must be acknowledged there."""
    app.consumer_generation_id = 4
    consumer = consumer_with_acks(consumer_class, committed=46)
    consumer.ack(message(46, generation=3))
    assert (46 in consumer._acked[ORDERS]) is counted


@pytest.mark.parametrize(("consumer_class", "waits"), [(PLAIN, False), (CORRECTED, True)])
async def test_wait_for_stopped_flow_waits_for_the_fetch_in_flight(consumer_class, waits):
    client = FakeClient(ORDERS, committed=0, offsets=[])
    worker = Worker(consumer_class, client)
    await worker.assign(1)
    await worker.consumer.perform_seek()
    fetch = asyncio.create_task(worker.consumer._wait_next_records(timeout=5.0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not fetch.done()
    waiting = asyncio.create_task(worker.consumer.wait_for_stopped_flow())
    for _ in range(5):
        await asyncio.sleep(0)
    assert (not waiting.done()) is waits
    client.produce(0)
    await asyncio.wait_for(asyncio.gather(fetch, waiting), 5.0)


async def test_a_never_committed_partition_is_read_from_the_start_of_its_log():
    """aiokafka's seek_to_committed leaves a partition the group never committed where the last fetch
    left it; the corrected seek puts it at the log's start, so records dropped before are read."""
    client = FakeClient(ORDERS, committed=None, offsets=[5, 6, 7])
    client.position = 7  # a fetch of 5 and 6 was dropped while the partition was paused
    worker = Worker(CORRECTED, client)
    await worker.assign(1)
    await worker.consumer.perform_seek()
    worker.start()
    await until(lambda: 7 in worker.offsets_handed(1), "offset 7 handed out")
    await worker.stop()
    assert worker.offsets_handed(1) == {5, 6, 7}
    assert worker.commit_offset() == 8


async def test_changelog_records_a_stale_fetch_returns_after_the_recovery_positioned_them_are_read_again():
    """A fetch from before the rebalance hands out nothing, so what it drained of a changelog that
    table recovery had just positioned (`seek_wait`) must be fetched again, or the recovery waits for
    records it never gets."""
    changelog = TP("app-orders-changelog", 1)
    client = FakeClient(changelog, committed=None, offsets=list(range(20)))
    worker = Worker(CORRECTED, client)
    consumer = worker.consumer
    await worker.assign(1)
    client.hold = asyncio.get_running_loop().create_future()
    worker.start()
    await until(lambda: not consumer.not_waiting_next_records.is_set(), "a fetch to be in flight")
    await consumer.on_partitions_revoked({changelog})
    consumer.stop_flow()
    await worker.assign(2)
    consumer.resume_flow()  # the recovery reads the changelog
    await consumer.seek_wait({changelog: 5})
    client.hold.set_result(None)  # the stale fetch drains 5-19
    await until(lambda: worker.offsets_handed(2) >= set(range(5, 20)), "the changelog read from 5 again")
    await worker.stop()

"""Corrections to faust-streaming 0.15.3: three made a worker commit offsets of messages
no agent had handled; the sixth makes table recovery fast. Each subclasses the class it corrects; the
app installs them (service/app.py: `TableManager` setting, `App._new_transport`).
tests/unit/test_faust_fixes.py, tests/unit/test_no_skip_consumer.py and tests/unit/test_bulk_recovery.py
pin the library behaviour each corrects, so an override can go when the library changes.

1. Table recovery seeks the stream partitions to their committed offsets before they resume.

faust-streaming 0.15.3 (`faust/tables/recovery.py`, `Recovery._resume_streams` and
`Recovery.on_recovery_completed`) resumes fetching the stream partitions and only then seeks them to
their committed offsets, while the flow is already active from the changelog recovery. Messages fetched
in that window reach the agents' queues and advance the consumer's read offsets; the seek then moves the
read offsets back, the next message fetched looks like a jump over a compacted range (the consumer's
"gap", which counts as acknowledged), and `flow_control.resume()` empties the queues. The offsets of the
messages dropped that way are committed although no agent ever saw them: orders lost after a worker
restart (seen as 15-23 of 400 orders missing in the hard-kill reliability test; upstream: faust-streaming
issue 596). Here the seek happens while the stream partitions are still paused, and the partitions and
the flow resume together with no await between them, so the first message fetched is the committed one.

2. A fetch returns only records of the partitions that were active when it started.

Faust hands aiokafka its live set of active partitions; aiokafka reads an empty set as "every
partition". When the last active partitions are paused while a fetch waits (the changelogs, at the end
of a recovery), the fetch returns records of the still-paused stream partitions, Faust drops them as
inactive, and aiokafka has counted them as consumed. A partition with a committed offset is sought
back later; one without (a topic this group never committed, e.g. the first retry ever written) lost
its messages until the next restart. Here a fetch is given a copy of the set, and none at all when
the set is empty.

3. No commit passes a record that no agent was handed (`NoSkipConsumer`).

Faust counts every jump in a partition's offsets as acknowledged (`Consumer._add_gap`, `_new_offset`;
meant for compacted topics), and `Consumer.getmany` drops records of partitions that are not active,
or of a fetch whose generation has ended, without seeking back although aiokafka has counted them
consumed. With a rebalance under load both happen together: a fetch issued before the revocation
returns during the recovery's seek (aiokafka waits for the new assignment inside the same call), its
records of a kept, still paused partition are dropped, the next record handed out is several offsets
on, and the next commit passes every dropped record: 2-6 of 600 orders lost in 3 of 4 runs with a
worker joining and leaving three times (a kept partition resumed past its committed offset, e.g.
committed 46, resumed at 51). Faust also judged a fetch's generation when it returned instead of when
it started, counted acknowledgements of an ended generation's records (its streams acknowledge the
records they skip), and its head check `min(acked) - committed > 1` let one missing record through.

4. A worker that comes back under its instance id with a new URL takes its assignment
(`StaticMemberAssignor`).

With static membership (OUTBOUND_INSTANCE_ID) the broker answers a known member's rejoin with the
assignment the leader made for it before, which names the URL the member had then. Faust asserts that
URL is its own (`PartitionAssignor.on_assignment`); a worker restarted on another address failed that
assertion inside aiokafka's coordinator routine, which then stopped for good: the worker never got a
partition and never became ready. Here the old URL is replaced by the worker's own in what it keeps
(its own partitions are served here, not forwarded to the old address); the other workers learn the
new URL at the group's next rebalance.

5. A commit waits until the broker has every table write made before it (`SettledFlushProducer`).

Tables write their changelog records through the producer's buffer (`send_soon`). Before committing,
Faust flushes it (`Consumer._commit_offsets`), but `ProducerBuffer.flush_atmost` gives up after 0.1 s
without progress and returns with records still waiting, a record taken off the buffer but not yet
handed to aiokafka is in neither place, and aiokafka's `flush` returns without raising when a batch
failed. A commit could thus pass input whose table writes never reached the broker: after a crash
the table lacks them and the input is not read again. Here the flush also waits for every record
handed to the buffer before it, and a record the broker refused stops every later commit (the
worker's liveness says so: a restart redoes the work from the committed offsets).

6. Table recovery reads the changelogs in bulk (`BulkRestoreRecovery`, service/bulk_recovery.py).

Faust's recovery handles every changelog record in Python one at a time (`Recovery._slurp_changelogs`):
a worker with a wiped data directory took about 3 minutes to become ready with 200,000 recipes, which a
bare consumer reads in seconds. Here each changelog partition is first read with large fetches and
written to its RocksDB partition as write batches of raw bytes, the partition's offset in the same
batch; Faust then sees the partitions as recovered and reads only what was written since.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import IllegalStateError
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata
from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.utils.functional import consecutive_numbers

from service import health
from service.bulk_recovery import (
    FETCH_MAX_BYTES,
    MAX_PARTITION_FETCH_BYTES,
    ChangelogConsumer,
    ChangelogRestorer,
    bulk_restorable,
)
from service.kafka_admin import client_options
from service.settings import get_settings

logger = logging.getLogger(__name__)


class SeekFirstRecovery(Recovery):
    async def _resume_streams(self, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume_partitions()
        self.completed.set()
        self.log.info("Resuming flow...")
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
            return
        await self._seek_then_resume_partitions()
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume_partitions(self) -> None:
        """Seek while the stream partitions are paused (nothing of them is fetched meanwhile), then resume
        them; the caller resumes the flow before its next await."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        if not assignment:
            self.log.info("Resuming streams with empty assignment")
            return
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in consumer.assignment() if not self._is_changelog_tp(tp)})


class BulkRestoreRecovery(SeekFirstRecovery):
    """Faust's recovery (with the seek above) that first restores the changelog partitions in bulk
    (correction 6 above; service/bulk_recovery.py), for the actives and then the standbys.

    The hook is `_seek_offsets`, where Faust positions the changelog partitions it is about to read:
    its offsets (the last offset applied per partition, from the store and the log's start) are then
    final, and what it reads afterwards starts where the bulk restore stopped. Faust runs that step
    under `broker_request_timeout` and takes a timeout for a stopped service (its recovery loop ends
    for good), so a restore gets half of it; an active restore cut short asks Faust for another round
    (`signal_recovery_start`, its own restart), which goes on from the offsets reached. A standby restore
    cut short leaves the rest to Faust's standby reading, which follows the changelog anyway.
    """

    async def _seek_offsets(self, consumer: Any, tps: set[TP], offsets: Counter[TP], title: str) -> None:
        await self._restore_in_bulk(consumer, tps, offsets, title)
        await super()._seek_offsets(consumer, tps, offsets, title)

    async def _restore_in_bulk(self, consumer: Any, tps: set[TP], offsets: Counter[TP], title: str) -> None:
        tables = {tp: cast(Any, table) for tp in tps if (table := self.tp_to_table.get(tp)) is not None}
        stores = {tp: table.data for tp, table in tables.items() if bulk_restorable(table)}
        # Only partitions with records left: a restart that kept its data, and most rebalances, then
        # start no consumer (the recovery's time counts against readiness and keeps the worker in
        # recovery meanwhile). Faust has the actives' last offsets already; the standbys' it asks after.
        if title == "active":
            last = {tp: self.active_highwaters.get(tp) for tp in stores}
        else:
            ends = await consumer.highwaters(*stores) if stores else {}
            last = {tp: None if ends.get(tp) is None else ends[tp] - 1 for tp in stores}
        applied = {tp: -1 if (offset := offsets.get(tp)) is None else int(offset) for tp in stores}
        stores = {tp: store for tp, store in stores.items() if (end := last[tp]) is None or end > applied[tp]}
        if not stores:
            return
        app = self.app
        generation = app.consumer_generation_id

        def still_wanted() -> bool:
            return (
                app.consumer_generation_id == generation
                and not self.should_stop
                and not self.signal_recovery_start.is_set()
            )

        def on_applied(tp: TP, offset: int) -> None:
            offsets[tp] = offset

        restorer = ChangelogRestorer(
            self._new_changelog_consumer, budget=app.conf.broker_request_timeout / 2, still_wanted=still_wanted
        )
        restored = await restorer.restore(
            {tp: partial(store._db_for_partition, tp.partition) for tp, store in stores.items()},
            {tp: applied[tp] for tp in stores},
            on_applied,
        )
        if not restored.complete and title == "active" and still_wanted():
            logger.info("bulk restore goes on in another recovery round", extra={"records": restored.records})
            self.signal_recovery_start.set()

    def _new_changelog_consumer(self) -> ChangelogConsumer:
        """A group-less consumer of its own (the worker's is paused and positioned by Faust), with the
        worker's broker settings and Faust's isolation level."""
        return cast(
            ChangelogConsumer,
            AIOKafkaConsumer(
                **client_options(get_settings()),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed" if self.app.in_transaction else "read_uncommitted",
                check_crcs=self.app.conf.broker_check_crcs,
                max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                fetch_max_bytes=FETCH_MAX_BYTES,
            ),
        )


class TableManager(FaustTableManager):
    """Faust's table manager with the recovery above (the app's `TableManager` setting names it)."""

    async def on_start(self) -> None:
        # Faust's waits 1 s first, for tables declared after the worker starts; every table of this
        # service is declared at import, before it starts. That second was a sixth of every start.
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRestoreRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class ActiveOnlyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        active = set(active_partitions)  # a copy: Faust's own set changes while the fetch waits
        if not active:
            return {}
        return await super()._fetch_records(consumer, active, timeout=timeout, max_records=max_records)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed_at_once)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust's, except a commit whose partitions were all revoked meanwhile is not sent: Faust keeps
        only the assigned ones and hands aiokafka the rest even when none is left, aiokafka refuses an
        empty commit with ValueError, and Faust crashes the worker on it (seen when a rebalance revoked
        every partition of a commit in flight). Nothing of a revoked partition is committed either way;
        False is what Faust returns for a commit the rebalance overtook. No await lies between this
        check and Faust's own filter, and both run on this thread's loop, which is where the
        assignment changes."""
        assignment = self.assignment()
        if not any(tp in assignment for tp in offsets):
            return False
        return cast(bool, await super()._commit(offsets))

    async def _seek_to_committed_at_once(self) -> dict[Any, int | None]:
        """aiokafka's `seek_to_committed` with one offset request for every assigned partition: it asks
        once per partition (`committed(tp)` in a loop), some 60 round trips, 1.5 s of every start and
        rebalance here. The same positions: offsets above 0 are sought, the rest left where they are."""
        consumer = self._ensure_consumer()
        partitions = consumer._subscription.assigned_partitions()
        if not partitions:
            return {}
        found = await consumer._coordinator.fetch_committed_offsets(partitions)
        committed: dict[Any, int | None] = {}
        for tp in partitions:
            offset = found[tp].offset if tp in found and found[tp].offset != -1 else None
            committed[tp] = offset
            if offset and offset > 0:
                consumer._fetcher.seek_to(tp, offset)
        return committed


class NoSkipConsumer(faust_aiokafka.Consumer):
    """Faust's consumer that hands the agents every partition's records in an unbroken sequence and
    never commits past one it did not hand out (correction 3 above).

    The next offset an agent must get is kept per partition (`_next_offset`), set where Faust positions
    a partition (its recovery's seek to the committed offsets, `seek`, `seek_wait`) and advanced by each record
    handed out. A record of an acknowledged topic is handed out only if it is that offset (changelogs,
    which table recovery counts itself, only keep it for the seek back below). A record further on is a jump:
    records were dropped on the way (a paused partition, a fetch from before a rebalance); it is
    dropped too and the partition is sought back. A jump is accepted, as a gap that counts as
    acknowledged, only where the log really has holes: a compacted topic (`app.compacted_topics`), or
    the same jump seen again right after reading from its start (a transaction marker or records
    deleted by retention on an upstream topic). A fetch that started in an earlier generation hands
    out nothing. Acknowledgements of an earlier generation's records are not counted, and the commit
    needs the committed offset itself acknowledged (Faust let one missing record through).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_offset: dict[TP, int] = {}
        self._suspected_hole: dict[TP, tuple[int, int]] = {}
        self._fetched: Mapping[Any, list[Any]] = {}

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ActiveOnlyConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _acked_topic(self, topic: str) -> bool:
        return bool(self.app.topics.acks_enabled_for(topic))

    def _holes_expected(self, topic: str) -> bool:
        return topic in getattr(self.app, "compacted_topics", frozenset())

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        """Faust's, with the generation taken when the fetch starts (Faust takes it when the fetch has
        returned, so a fetch spanning a rebalance passed as the new one) and `not_waiting_next_records`
        cleared while the fetch waits (Faust set it at both ends, so `wait_for_stopped_flow` never
        waited)."""
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        generation = self.app.consumer_generation_id
        self.not_waiting_next_records.clear()
        records: Any = {}
        try:
            active_partitions: set[TP] | None = None if self.app.client_only else self._get_active_partitions()
            if self.app.client_only or active_partitions:
                records = await self._getmany(active_partitions=active_partitions, timeout=timeout)
            else:
                await self.sleep(1)
        finally:
            self.not_waiting_next_records.set()
        self._fetched = records
        if records and self.app.consumer_generation_id != generation:
            self.log.info("A fetch from before the rebalance returned: its records are read again")
            return {}, active_partitions
        return records, active_partitions

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        try:
            async for tp, message in super().getmany(timeout):
                if self._in_sequence(tp, message):
                    yield tp, message
        finally:
            fetched, self._fetched = self._fetched, {}
            self._seek_back_where_dropped(fetched)

    def _in_sequence(self, tp: TP, message: Message) -> bool:
        offset = message.offset
        if not self._acked_topic(message.topic):
            # Changelogs: jumps are compaction and table recovery counts its own offsets; the next
            # offset is kept only to seek back to where a fetch's records were dropped.
            if tp in self._next_offset:
                self._next_offset[tp] = offset + 1
            return True
        expected = self._next_offset.get(tp)
        if expected is None:
            return False  # not positioned in this generation yet: the recovery's seek comes first
        if offset == expected:
            self._next_offset[tp] = offset + 1
            self._suspected_hole.pop(tp, None)
            return True
        if offset < expected:
            return False  # read before the last seek
        suspected = self._suspected_hole.get(tp)
        if self._holes_expected(message.topic) or suspected == (expected, offset):
            gap = self._gap[tp]
            gap.addi(expected, offset)  # the hole only: the record at `offset` is acknowledged by its agent
            gap.merge_overlaps()
            self._next_offset[tp] = offset + 1
            self._suspected_hole.pop(tp, None)
            return True
        if suspected is None or suspected[0] != expected or offset < suspected[1]:
            # The first record after the jump: if reading again from `expected` gives it again, the
            # log has a hole there. (The later records of the same fetch change nothing.)
            self._suspected_hole[tp] = (expected, offset)
            self.log.info("Records %s-%s of %s dropped on the way: reading them again", expected, offset - 1, tp)
        return False

    def _seek_back_where_dropped(self, fetched: Mapping[Any, list[Any]]) -> None:
        """Every partition of which a fetched record was not handed out goes back to the first one."""
        if not fetched or self.should_stop:
            return
        assigned = self.assignment()
        for tp, records in fetched.items():
            expected = self._next_offset.get(tp)
            if expected is None or not records or records[-1].offset < expected or tp not in assigned:
                continue
            try:
                self._thread.seek(tp, expected)
            except IllegalStateError:
                continue  # revoked meanwhile: the next assignment's seek positions it
            self._read_offset[ensure_TP(tp)] = expected

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, and then, with no await between, every acknowledged
        partition positioned where its agents go on: the committed offset, or the log's start where the
        group never committed (aiokafka leaves those, and offset 0, wherever a dropped fetch left them).
        Acks recorded before it are forgotten: they belong to a generation that ended."""
        committed = await self.seek_to_committed()
        never = [tp for tp, offset in committed.items() if offset is None and self._acked_topic(tp.topic)]
        earliest = await self.earliest_offsets(*never) if never else {}
        assigned = self.assignment()
        for raw_tp, offset in committed.items():
            tp = ensure_TP(raw_tp)
            start = offset if offset is not None else earliest.get(raw_tp)
            if tp not in assigned or start is None or not self._acked_topic(tp.topic):
                self._read_offset[tp] = offset if offset is not None and offset >= 0 else None
                if offset:
                    self._committed_offset[tp] = offset
                continue
            self._positioned(tp, start)
            self._read_offset[tp] = start
            self._committed_offset[tp] = start
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)
            self._thread.seek(tp, start)

    def _positioned(self, tp: TP, offset: int) -> None:
        """The partition reads from `offset` next: what it is handed out is judged from there."""
        self._next_offset[tp] = offset
        self._suspected_hole.pop(tp, None)

    async def seek(self, partition: TP, offset: int) -> None:
        self._positioned(ensure_TP(partition), offset)
        await super().seek(partition, offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        """Table recovery positions the changelogs here."""
        for tp, offset in partitions.items():
            self._positioned(ensure_TP(tp), offset)
        await super().seek_wait(partitions)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._next_offset.pop(tp, None)
            self._suspected_hole.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust's commit, called after the producer's flush (`SettledFlushProducer`): refused for good
        once a table write was lost, since every offset from then on may pass input whose table state
        the broker does not have."""
        if health.noticed.lost_table_write is not None:
            return False
        return cast(bool, await super()._commit(offsets))

    def ack(self, message: Message) -> bool:
        generation = getattr(message, "generation_id", None)
        if generation is not None and generation != self.app.consumer_generation_id:
            return False  # of a generation that ended: the record is read again from the committed offset
        return bool(super().ack(message))

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust's gap also covered the record after it and used the read offset, which means the last
        record read or, right after a seek, the next one: gaps are recorded by `_in_sequence` instead."""

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's, except that the head check asks for the committed offset itself to be acknowledged
        (`min(acked) - committed > 1` let one missing record through) and also holds with offset 0."""
        acked = self._acked[tp]
        if not acked:
            return None
        highest = max(acked)
        gap = self._gap[tp]
        holes = sorted(gap.overlap(0, highest), key=lambda hole: hole.begin)
        if holes:
            filled = [offset for hole in holes for offset in range(hole.begin, hole.end)]
            acked.extend(filled)
            gap.chop(0, max(filled[-1], highest) + 1)
        acked.sort()
        committed = self._committed_offset[tp]
        if committed is not None and acked[0] > committed:
            return None
        batch = next(consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        return int(batch[-1]) + 1


class StaticMemberAssignor(PartitionAssignor):
    """Faust's assignor, which takes an assignment made for this member at an address it had before."""

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
        own = str(self._url)
        if metadata.url != own:
            logger.warning(
                "The group handed this worker the assignment it had at its previous URL (same instance id): "
                "its partitions are served here; the other workers learn the new URL at the next rebalance"
            )
            assignment = ConsumerProtocolMemberAssignment(
                assignment.version,
                assignment.assignment,
                self._compress(at_url(metadata, metadata.url, own).dumps()),
            )
        super().on_assignment(assignment)


def at_url(metadata: ClientMetadata, old: str, new: str) -> ClientMetadata:
    """The assignment metadata with every mention of `old` as a member's URL made `new`."""

    def moved(distribution: Mapping[str, Any]) -> dict[str, Any]:
        return {new if url == old else url: tps for url, tps in distribution.items()}

    return ClientMetadata(
        assignment=metadata.assignment,
        url=new if metadata.url == old else metadata.url,
        changelog_distribution=moved(metadata.changelog_distribution),
        external_topic_distribution=moved(metadata.external_topic_distribution),
        topic_groups=metadata.topic_groups,
    )


class SettledFlushProducer(faust_aiokafka.Producer):
    """Faust's producer whose flush returns once every record handed to `send_soon` before it is
    acknowledged by the broker, or has failed, which no later commit passes."""

    settle_seconds = 120.0  # past aiokafka's own delivery timeout: a record still unsettled then is lost

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unsettled: set[asyncio.Future[Any]] = set()

    def send_soon(self, fut: Any) -> None:
        self._unsettled.add(fut)
        fut.add_done_callback(self._settled)
        super().send_soon(fut)

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        self._unsettled.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self.lost(f"{type(fut.exception()).__name__} on {fut.message.channel.get_topic_name()}")  # type: ignore[attr-defined]

    def lost(self, what: str) -> None:
        if health.noticed.lost_table_write is None:
            health.noticed.lost_table_write = what
            logger.error("a table write never reached the broker: no commit from now on", extra={"write": what})

    async def flush(self) -> None:
        waiting = list(self._unsettled)
        await super().flush()
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=self.settle_seconds)
            if late:
                self.lost(f"{len(late)} records unacknowledged after {self.settle_seconds:g}s")


class Transport(faust_aiokafka.Transport):
    """Faust's Kafka transport with the consumer and the producer above."""

    Consumer = NoSkipConsumer
    Producer = SettledFlushProducer

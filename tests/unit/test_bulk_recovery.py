"""Bulk table recovery (service/bulk_recovery.py, `BulkRestoreRecovery` in service/faust_fixes.py): the
write batches hold what Faust's own changelog apply would write, each with its partition's offset, so a
restore stopped at any point leaves a store that says what it holds and goes on from there; the restore
stops writing once a rebalance begins. Faust's and aiokafka's behaviour the hook relies on is pinned:
where Faust positions the changelogs, what its offsets mean, that a timed-out step ends its recovery, and
that aiokafka's position passes what a fetch skipped. Also the consumer thread's commit that a rebalance
revoked every partition of (found running the reliability suite on this change)."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
from aiokafka.util import commit_structure_validate
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.recovery import Recovery, ServiceStopped
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service
from rocksdict import Options, Rdict, WriteBatch

from service.app import app
from service.bulk_recovery import OFFSET_KEY, ChangelogRestorer, Restored, bulk_restorable, write_records
from service.faust_fixes import ActiveOnlyConsumerThread, BulkRestoreRecovery

A = TP("app-recipes-changelog", 0)
B = TP("app-recipes-changelog", 1)


@dataclass
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None


def changelog(tp: TP, count: int, deletes: set[int] = frozenset(), start: int = 0) -> list[Rec]:  # type: ignore[assignment]
    """Keys cycle over a few, so later records overwrite and delete earlier ones."""
    return [
        Rec(offset, f"k{tp.partition}-{offset % 7}".encode(), None if offset in deletes else f"v{offset}".encode())
        for offset in range(start, start + count)
    ]


def latest(records: list[Rec], through: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for r in records:
        if r.offset > through or r.key is None:
            continue
        if r.value is None:
            state.pop(r.key, None)
        else:
            state[r.key] = r.value
    return state


def open_db(path: Path) -> Rdict:
    return Rdict(str(path), Options(raw_mode=True))


def contents(db: Rdict) -> tuple[dict[bytes, bytes], int | None]:
    items = dict(db.items())
    offset = items.pop(OFFSET_KEY, None)
    return items, None if offset is None else int(offset)


class FakeChangelog:
    """aiokafka's consumer as the restorer uses it: `per_fetch` records of a partition per fetch; a log
    whose end lies past its last record (a transaction marker) is passed once its records are read, as
    aiokafka passes control batches. `fail_at` raises on that fetch (a crash mid-restore)."""

    def __init__(
        self,
        logs: Mapping[TP, list[Rec]],
        ends: Mapping[TP, int] | None = None,
        per_fetch: int = 4,
        fail_at: int | None = None,
        on_fetch: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.logs = {TopicPartition(tp.topic, tp.partition): records for tp, records in logs.items()}
        self.ends = {
            TopicPartition(tp.topic, tp.partition): end
            for tp, end in (ends or {tp: (r[-1].offset + 1 if r else 0) for tp, r in logs.items()}).items()
        }
        self.per_fetch = per_fetch
        self.fail_at = fail_at
        self.on_fetch = on_fetch
        self.fetches = 0
        self.pos: dict[TopicPartition, int] = {}
        self.started = self.stopped = False

    def ends_by_tp(self) -> dict[TP, int]:
        return {TP(tp.topic, tp.partition): end for tp, end in self.ends.items()}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.pos = {tp: 0 for tp in partitions}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.pos[partition] = offset

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, list[Rec]]:
        self.fetches += 1
        self.on_fetch(self.fetches)
        if self.fail_at == self.fetches:
            raise RuntimeError("crash")
        out: dict[TopicPartition, list[Rec]] = {}
        for tp in partitions:
            records = [r for r in self.logs[tp] if r.offset >= self.pos[tp]][: self.per_fetch]
            if records:
                out[tp] = records
                self.pos[tp] = records[-1].offset + 1
            if not [r for r in self.logs[tp] if r.offset >= self.pos[tp]]:
                self.pos[tp] = max(self.pos[tp], self.ends[tp])
        await asyncio.sleep(0)
        return out

    async def position(self, partition: TopicPartition) -> int:
        return self.pos[partition]


class Snapshots:
    """A DB that records its contents after every write (to check every point a crash could leave)."""

    def __init__(self, db: Rdict) -> None:
        self.db = db
        self.after: list[tuple[dict[bytes, bytes], int | None]] = []

    def write(self, batch: WriteBatch) -> None:
        self.db.write(batch)
        self.after.append(contents(self.db))


def restorer(consumer: Any, still_wanted: Callable[[], bool] = lambda: True, budget: float = 60.0) -> ChangelogRestorer:
    return ChangelogRestorer(lambda: consumer, budget=budget, still_wanted=still_wanted, fetch_wait_ms=0)


# -- what a batch writes --------------------------------------------------------------------------


def faust_apply(db: Rdict, records: list[Rec], tp: TP) -> None:
    """Faust's own `Store.apply_changelog_batch` (rocksdict driver) on the same records."""
    store = SimpleNamespace(use_rocksdict=True, offset_key=RocksDBStore.offset_key, _db_for_partition=lambda p: db)
    store.set_persisted_offset = lambda tp, offset: RocksDBStore.set_persisted_offset(store, tp, offset)  # type: ignore[arg-type]
    events = [
        SimpleNamespace(
            message=SimpleNamespace(tp=tp, offset=r.offset, partition=tp.partition, key=r.key, value=r.value)
        )
        for r in records
    ]
    RocksDBStore.apply_changelog_batch(store, events, to_key=lambda k: k, to_value=lambda v: v)  # type: ignore[arg-type]


def test_a_batch_writes_what_faust_would_raw_bytes_deletions_and_its_offset(tmp_path):
    """The pin: Faust's own apply puts the records' raw bytes, deletes on None and stores the last
    offset as str(offset) under `Store.offset_key`; the bulk batch leaves the store identical."""
    records = changelog(A, 30, deletes={9, 17, 23})
    faust_db, bulk_db = open_db(tmp_path / "faust"), open_db(tmp_path / "bulk")
    faust_apply(faust_db, records, A)
    write_records(bulk_db, records, records[-1].offset)
    assert dict(bulk_db.items()) == dict(faust_db.items())
    items, offset = contents(bulk_db)
    assert offset == 29 and items == latest(records, 29)
    assert b"k0-2" not in items  # deleted at 23, never written again
    # Faust reads the stored offset back as the partition's persisted offset.
    store = SimpleNamespace(offset_key=RocksDBStore.offset_key, _db_for_partition=lambda p: bulk_db)
    assert RocksDBStore.persisted_offset(store, A) == 29  # type: ignore[arg-type]


def test_the_offset_key_is_fausts_own_and_hidden_from_the_table(tmp_path):
    assert RocksDBStore.offset_key == OFFSET_KEY
    db = open_db(tmp_path / "db")
    write_records(db, changelog(A, 3), 2)
    store = SimpleNamespace(use_rocksdict=True, offset_key=RocksDBStore.offset_key)
    assert sorted(RocksDBStore._visible_keys(store, db)) == [b"k0-0", b"k0-1", b"k0-2"]  # type: ignore[arg-type]


def test_a_keyless_record_is_skipped_and_still_counted(tmp_path):
    db = open_db(tmp_path / "db")
    write_records(db, [Rec(0, None, b"x"), Rec(1, b"a", b"1")], 1)
    assert contents(db) == ({b"a": b"1"}, 1)


# -- the restore ----------------------------------------------------------------------------------


async def test_a_restore_applies_every_partition_to_its_end(tmp_path):
    logs = {A: changelog(A, 25, deletes={4, 11, 24}), B: changelog(B, 9)}
    dbs = {A: open_db(tmp_path / "a"), B: open_db(tmp_path / "b")}
    heard: list[tuple[TP, int]] = []
    consumer = FakeChangelog(logs)
    restored = await restorer(consumer).restore(
        {tp: (lambda db=db: db) for tp, db in dbs.items()}, {A: -1, B: -1}, lambda tp, o: heard.append((tp, o))
    )
    assert restored.complete and restored.records == 34 and restored.offsets == {A: 24, B: 8}
    assert contents(dbs[A]) == (latest(logs[A], 24), 24)
    assert contents(dbs[B]) == (latest(logs[B], 8), 8)
    assert heard[-2:] == [(A, 24)] or ((A, 24) in heard and (B, 8) in heard)
    assert consumer.started and consumer.stopped


async def test_a_restore_goes_on_from_the_stored_offset_and_skips_a_partition_at_its_end(tmp_path):
    full = changelog(A, 20)
    db_a, db_b = open_db(tmp_path / "a"), open_db(tmp_path / "b")
    write_records(db_a, full[:12], 11)
    write_records(db_b, changelog(B, 5), 4)
    consumer = FakeChangelog({A: full, B: changelog(B, 5)})
    restored = await restorer(consumer).restore({A: lambda: db_a, B: lambda: db_b}, {A: 11, B: 4})
    assert restored.records == 8 and restored.offsets == {A: 19, B: 4}
    assert contents(db_a) == (latest(full, 19), 19)


async def test_the_stored_offset_passes_what_the_fetch_skipped(tmp_path):
    """A log ending in a transaction marker: its last record is at 9, its end at 11. The offset stored is
    10, so Faust's recovery (which reads up to end - 1) finds nothing left and does not wait for a
    record that will never come."""
    db = open_db(tmp_path / "a")
    restored = await restorer(FakeChangelog({A: changelog(A, 10)}, ends={A: 11})).restore({A: lambda: db}, {A: -1})
    assert restored.complete and restored.offsets == {A: 10}
    assert contents(db)[1] == 10


async def test_every_write_leaves_a_store_that_matches_its_offset(tmp_path):
    """Whatever write a crash comes after, the store holds exactly the changelog up to its offset."""
    records = changelog(A, 40, deletes={3, 8, 15, 22, 39})
    db = Snapshots(open_db(tmp_path / "a"))
    await restorer(FakeChangelog({A: records}, per_fetch=3)).restore({A: lambda: db}, {A: -1})
    assert len(db.after) == 14  # one write per fetch
    for items, offset in db.after:
        assert offset is not None and items == latest(records, offset)


async def test_a_crash_mid_restore_restarts_from_what_was_written(tmp_path):
    records = changelog(A, 40, deletes={5, 30})
    db = open_db(tmp_path / "a")
    with pytest.raises(RuntimeError):
        await restorer(FakeChangelog({A: records}, per_fetch=5, fail_at=4)).restore({A: lambda: db}, {A: -1})
    items, offset = contents(db)
    assert offset == 14 and items == latest(records, 14)
    # The next start reads on from the stored offset (Faust's persisted offset).
    restored = await restorer(FakeChangelog({A: records}, per_fetch=5)).restore({A: lambda: db}, {A: offset})
    assert restored.records == 25 and contents(db) == (latest(records, 39), 39)


async def test_nothing_is_written_once_a_rebalance_began(tmp_path):
    records = changelog(A, 40)
    db = Snapshots(open_db(tmp_path / "a"))
    wanted = True

    def rebalance_on(fetch: int) -> None:
        nonlocal wanted
        if fetch == 3:
            wanted = False  # the fetch in flight when it began is not written

    consumer = FakeChangelog({A: records}, per_fetch=5, on_fetch=rebalance_on)
    restored = await restorer(consumer, still_wanted=lambda: wanted).restore({A: lambda: db}, {A: -1})
    assert not restored.complete and restored.offsets == {A: 9} and len(db.after) == 2
    assert consumer.stopped


async def test_a_restore_past_its_budget_stops_between_batches(tmp_path):
    db = open_db(tmp_path / "a")
    restored = await restorer(FakeChangelog({A: changelog(A, 40)}), budget=0.0).restore({A: lambda: db}, {A: -1})
    assert restored == Restored({A: -1}, False, 0, restored.seconds)


# -- the hook into Faust's recovery ---------------------------------------------------------------


class HarnessApp:
    def __init__(self, generation: list[int]) -> None:
        self.generation = generation
        self.conf = SimpleNamespace(broker_request_timeout=90.0)

    @property
    def consumer_generation_id(self) -> int:
        return self.generation[0]


class HookHarness(BulkRestoreRecovery):
    """The recovery's `_seek_offsets` alone, over fake tables, consumer and app."""

    def __init__(self, stores: Mapping[TP, Any], changelog_consumer: FakeChangelog, generation: list[int]) -> None:
        self.generation = generation
        self.tp_to_table = {tp: SimpleNamespace(data=store) for tp, store in stores.items()}
        self._signal_recovery_start = asyncio.Event()
        self._changelog_consumer = changelog_consumer
        self.harness_app = HarnessApp(generation)
        # Faust's: the last offset of each active changelog partition (end - 1).
        self.active_highwaters = Counter({tp: end - 1 for tp, end in changelog_consumer.ends_by_tp().items()})

    @property  # type: ignore[override]
    def app(self) -> Any:
        return self.harness_app

    @property
    def should_stop(self) -> bool:  # type: ignore[override]
        return False

    def _new_changelog_consumer(self) -> Any:
        return self._changelog_consumer


class FakeStore(RocksDBStore):
    """Faust's RocksDB store class (what `bulk_restorable` asks for) over one DB per partition."""

    def __init__(self, dbs: Mapping[int, Rdict]) -> None:  # the store machinery is not needed
        self.use_rocksdict = True
        self.dbs = dict(dbs)

    def _db_for_partition(self, partition: int) -> Any:
        return self.dbs[partition]


class SeekingConsumer:
    """The worker's consumer as Faust's `_seek_offsets` and the standbys' end offsets use it."""

    def __init__(self, ends: Mapping[TP, int] | None = None) -> None:
        self.sought: dict[TP, int] = {}
        self.ends = dict(ends or {})

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek_wait(self, offsets: Mapping[TP, int]) -> None:
        self.sought.update(offsets)


async def test_the_hook_restores_then_lets_faust_seek_from_the_offsets_reached(tmp_path):
    dbs = {0: open_db(tmp_path / "a"), 1: open_db(tmp_path / "b")}
    logs = {A: changelog(A, 12), B: changelog(B, 3)}
    recovery = HookHarness({A: FakeStore(dbs), B: FakeStore(dbs)}, FakeChangelog(logs), [5])
    offsets: Counter[TP] = Counter({A: -1, B: -1})
    consumer = SeekingConsumer()
    await recovery._seek_offsets(consumer, {A, B}, offsets, "active")
    assert offsets == {A: 11, B: 2}
    assert consumer.sought == {A: 11, B: 2}  # Faust's seek: to the last offset applied (read again, skipped)
    assert contents(dbs[0]) == (latest(logs[A], 11), 11)
    assert not recovery.signal_recovery_start.is_set()


async def test_an_active_restore_cut_short_asks_faust_for_another_round_a_standby_one_does_not(tmp_path):
    for title, asks in (("active", True), ("standby", False)):
        dbs = {0: open_db(tmp_path / f"{title}-a")}
        recovery = HookHarness({A: FakeStore(dbs)}, FakeChangelog({A: changelog(A, 12)}), [5])
        recovery.harness_app.conf.broker_request_timeout = 0.0
        offsets: Counter[TP] = Counter({A: -1})
        await recovery._seek_offsets(SeekingConsumer(ends={A: 12}), {A}, offsets, title)
        assert recovery.signal_recovery_start.is_set() is asks


async def test_partitions_with_nothing_left_start_no_consumer(tmp_path):
    """A kept data directory, or a rebalance that moved nothing: Faust's highwaters say all is there."""
    db = open_db(tmp_path / "a")
    write_records(db, changelog(A, 12), 11)
    for title in ("active", "standby"):
        changelog_consumer = FakeChangelog({A: changelog(A, 12)})
        recovery = HookHarness({A: FakeStore({0: db})}, changelog_consumer, [5])
        offsets: Counter[TP] = Counter({A: 11})
        consumer = SeekingConsumer(ends={A: 12})
        await recovery._seek_offsets(consumer, {A}, offsets, title)
        assert not changelog_consumer.started and offsets == {A: 11} and consumer.sought == {A: 11}


async def test_standbys_are_restored_to_the_end_the_worker_consumer_reports(tmp_path):
    db = open_db(tmp_path / "a")
    logs = {A: changelog(A, 12, deletes={10})}
    recovery = HookHarness({A: FakeStore({0: db})}, FakeChangelog(logs), [5])
    recovery.active_highwaters = Counter()  # the standbys' are not Faust's actives'
    offsets: Counter[TP] = Counter({A: -1})
    consumer = SeekingConsumer(ends={A: 12})
    await recovery._seek_offsets(consumer, {A}, offsets, "standby")
    assert offsets == {A: 11} and contents(db) == (latest(logs[A], 11), 11)


async def test_the_hook_stops_writing_when_the_generation_changes(tmp_path):
    dbs = {0: open_db(tmp_path / "a")}
    generation = [5]

    def rebalance_on(fetch: int) -> None:
        if fetch == 2:
            generation[0] = 6

    recovery = HookHarness({A: FakeStore(dbs)}, FakeChangelog({A: changelog(A, 12)}, on_fetch=rebalance_on), generation)
    offsets: Counter[TP] = Counter({A: -1})
    await recovery._seek_offsets(SeekingConsumer(), {A}, offsets, "active")
    assert offsets[A] == 3 and contents(dbs[0])[1] == 3
    assert not recovery.signal_recovery_start.is_set()  # the rebalance itself restarts the recovery


def test_every_table_of_the_service_is_restored_in_bulk():
    assert app.tables, "the app declares its tables at import"
    assert all(bulk_restorable(table) for table in app.tables.values())
    assert isinstance(app.tables.recovery, BulkRestoreRecovery)


def test_a_table_with_a_changelog_callback_is_left_to_faust():
    table = next(iter(app.tables.values()))
    assert not bulk_restorable(SimpleNamespace(data=table.data, _on_changelog_event=lambda event: None))
    assert not bulk_restorable(SimpleNamespace(data=object(), _on_changelog_event=None))


# -- Faust's and aiokafka's behaviour the hook relies on ------------------------------------------


def test_faust_positions_the_changelogs_before_deciding_to_read_them_and_before_the_standbys_start():
    """`_seek_offsets` comes after the highwaters and offsets of the actives and before `need_recovery()`
    (with a restart check between), and for the standbys before they are resumed and the worker is made
    ready (`on_recovery_completed`)."""
    source = inspect.getsource(Recovery._restart_recovery.fun)
    order = [
        "self._build_highwaters)(\n                        consumer, assigned_active_tps",
        "self._build_offsets)(\n                        consumer, assigned_active_tps",
        'consumer, assigned_active_tps, active_offsets, "active"\n                    ),\n                    timeout',
        "if self.signal_recovery_start.is_set():",
        "if self.need_recovery():",
        'consumer, standby_tps, standby_offsets, "standby"',
        "T(consumer.resume_partitions)(standby_tps)",
        "self.on_recovery_completed)(generation_id)",
    ]
    positions = [source.index(step) for step in order]
    assert positions == sorted(positions)
    assert source.count("self._seek_offsets)(") == 2


def test_faust_offsets_are_the_last_offset_applied_and_its_highwater_the_log_end_less_one():
    recovery: Any = SimpleNamespace(log=SimpleNamespace(info=lambda *a, **k: None))
    recovery._highwater_logtable = lambda *a, **k: ""
    recovery._start_offsets_logtable = lambda *a, **k: ""

    async def highwaters(*tps: TP) -> dict[TP, int]:
        return {A: 12, B: 0}

    async def earliest(*tps: TP) -> dict[TP, int]:
        return {A: 0, B: 0}

    consumer = SimpleNamespace(highwaters=highwaters, earliest_offsets=earliest)
    highs: Counter[TP] = Counter()
    asyncio.run(Recovery._build_highwaters(recovery, consumer, {A, B}, highs, "active"))  # type: ignore[arg-type]
    assert highs == {A: 11, B: -1}
    offsets: Counter[TP] = Counter({A: None, B: None})  # type: ignore[dict-item]
    asyncio.run(Recovery._build_offsets(recovery, consumer, {A, B}, offsets, "active"))  # type: ignore[arg-type]
    assert offsets == {A: -1, B: -1}  # nothing applied: the bulk restore starts at offset 0
    recovery.active_highwaters, recovery.active_offsets = highs, Counter({A: 11, B: -1})
    recovery.active_remaining = lambda: Recovery.active_remaining(recovery)
    assert not Recovery.need_recovery(recovery)  # a partition restored to end - 1 is done
    recovery.active_offsets[A] = 10
    assert Recovery.need_recovery(recovery)


def test_faust_skips_the_record_its_seek_reads_again():
    """Faust seeks a changelog to its last applied offset and so reads that record again; it applies a
    record only past the offset it has."""
    assert "offset = offsets[tp]\n            if offset == -1:\n                offset = 0" in inspect.getsource(
        Recovery._seek_offsets
    )
    assert "if seen_offset is None or offset > seen_offset:" in inspect.getsource(Recovery._slurp_changelogs.fun)


async def test_a_step_of_faust_recovery_that_times_out_stops_its_recovery_for_good():
    """Why a restore gets half of `broker_request_timeout`: Faust's `_wait` takes the timeout for a
    stopped service, and `_restart_recovery` ends its loop on that."""
    fake: Any = SimpleNamespace(
        _stopped=asyncio.Event(),
        _crashed=asyncio.Event(),
        loop=asyncio.get_running_loop(),
        signal_recovery_start=asyncio.Event(),
    )
    fake.wait_first = lambda *coros, timeout=None: Service.wait_first(fake, *coros, timeout=timeout)
    with pytest.raises(ServiceStopped):
        await Recovery._wait(fake, asyncio.sleep(1.0), timeout=0.01)
    assert "except ServiceStopped as exc:" in inspect.getsource(Recovery._restart_recovery.fun)
    assert "break  # service was stopped" in inspect.getsource(Recovery._restart_recovery.fun)


def test_aiokafka_moves_the_position_past_what_a_fetch_returned_and_skipped():
    """The position after a fetch is `next_fetch_offset`, which passes control batches and the end of a
    compacted batch; the integration test checks the same against the broker with a transaction marker."""
    getall = inspect.getsource(FetchResult.getall)
    assert getall.count("self._update_position()") == 2
    assert "state.consumed_to(self._partition_records.next_fetch_offset)" in inspect.getsource(
        FetchResult._update_position
    )
    unpack = inspect.getsource(PartitionRecords._unpack_records)
    assert "if next_batch.is_control_batch:\n                self.next_fetch_offset = next_batch.next_offset" in unpack
    assert "self.next_fetch_offset = record.offset + 1" in unpack


# -- found while running the reliability suite on this change: a commit overtaken by a rebalance -----


class CommitHarness(ActiveOnlyConsumerThread):
    """The consumer thread's `_commit` alone, over a fake aiokafka consumer and a fixed assignment."""

    def __init__(self, assigned: set[TP]) -> None:  # the thread machinery is not needed
        self.assigned = assigned
        self.sent: list[dict[Any, Any]] = []
        self.crash_reasons: list[BaseException] = []
        self.tp_last_committed_at: dict[TP, float] = {}

        async def commit(offsets: dict[Any, Any]) -> None:
            commit_structure_validate(offsets)  # aiokafka's own check of what it is handed
            self.sent.append(offsets)

        self.client = SimpleNamespace(commit=commit)

    def assignment(self) -> set[TP]:  # type: ignore[override]
        return self.assigned

    def _ensure_consumer(self) -> Any:
        return self.client

    async def crash(self, reason: BaseException) -> None:
        self.crash_reasons.append(reason)

    @property
    def log(self) -> Any:  # type: ignore[override]
        return SimpleNamespace(exception=lambda *a, **k: None)


async def test_a_commit_whose_partitions_were_all_revoked_is_not_sent():
    thread = CommitHarness(assigned={B})
    assert await thread._commit({A: 5}) is False
    assert thread.sent == [] and thread.crash_reasons == []
    assert await thread._commit({A: 5, B: 7}) is True
    assert [{tp.partition: o.offset for tp, o in sent.items()} for sent in thread.sent] == [{1: 7}]


async def test_faust_hands_aiokafka_an_empty_commit_and_crashes_on_its_refusal():
    """The pin: Faust filters the offsets by the assignment and sends what is left, even nothing;
    aiokafka refuses an empty commit. If either changes, the override can go."""
    with pytest.raises(ValueError):
        commit_structure_validate({})
    thread = CommitHarness(assigned={B})
    assert await faust_aiokafka.AIOKafkaConsumerThread._commit(thread, {A: 5}) is False
    assert [type(e) for e in thread.crash_reasons] == [ValueError]

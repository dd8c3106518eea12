"""Table recovery in bulk: a changelog partition read with large fetches and written to its RocksDB
partition as write batches of the records' raw bytes, each batch carrying the partition's changelog
offset.

Why: Faust's recovery (`Recovery._slurp_changelogs`) takes the changelog records one at a time through
the consumer's queue, an `asyncio.wait_for`, debug f-strings formatted whether or not debug is on and a
`need_recovery()` that rebuilds a Counter per record: ~1 ms of the worker's one thread per record, 3
minutes for 200,000 recipes where a bare consumer reads them in seconds.

What stays Faust's: the store, its key and value bytes (Faust's own `Store.apply_changelog_batch` puts
the record's raw key and value too, and deletes on a None value), and its offset bookkeeping. The
offset is stored under Faust's own key (`Store.offset_key`) in Faust's format (`str(offset)`), as the
offset of the last record applied, so Faust's `persisted_offset` reads it and Faust's recovery then
finds nothing, or only the tail written since, left to read. Unlike Faust's `apply_changelog_batch`,
which writes the data and then the offset in two writes, the offset goes into the same write batch as
the data: a crash between batches leaves a partition whose offset says exactly what it holds, and the
next start reads on from there.

The recovery hook (`service/faust_fixes.py`, `BulkRestoreRecovery`) calls `ChangelogRestorer.restore`
where Faust positions the changelog partitions (`Recovery._seek_offsets`), for the actives and then the
standbys, and hands Faust the offsets reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from rocksdict import WriteBatch

logger = logging.getLogger(__name__)

# Faust's own offset key: `Store.persisted_offset` reads it, `Store._visible_keys` hides it.
OFFSET_KEY: bytes = RocksDBStore.offset_key

# Large fetches: one response carries thousands of records (the bare reader uses 4 MiB per partition).
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
FETCH_MAX_BYTES = 64 * 1024 * 1024


class Record(Protocol):
    """What is used of an aiokafka `ConsumerRecord` (no deserializer: raw bytes)."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class WritableDB(Protocol):
    def write(self, batch: WriteBatch) -> None: ...


class ChangelogConsumer(Protocol):
    """The part of aiokafka's `AIOKafkaConsumer` the restorer uses (a fake in the unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0) -> Mapping[TopicPartition, Any]: ...

    async def position(self, partition: TopicPartition) -> int: ...


def bulk_restorable(table: Any) -> bool:
    """A table whose changelog can be written straight to its store: Faust's RocksDB store through
    rocksdict (raw bytes in, raw bytes out) and no changelog callback (which would want each event)."""
    store = getattr(table, "data", None)
    return (
        isinstance(store, RocksDBStore)
        and bool(store.use_rocksdict)
        and getattr(table, "_on_changelog_event", None) is None
    )


def write_records(db: WritableDB, records: Sequence[Record], applied_through: int) -> None:
    """One atomic write: every record's raw key and value (a None value deletes the key) and the
    partition's offset, `applied_through` being the last changelog offset this batch accounts for."""
    batch = WriteBatch(raw_mode=True)
    for record in records:
        if record.key is None:
            continue  # a changelog record always has a key; Faust's own apply would fail on one without
        if record.value is None:
            batch.delete(record.key)
        else:
            batch.put(record.key, record.value)
    batch.put(OFFSET_KEY, str(applied_through).encode())
    db.write(batch)


@dataclass
class Restored:
    """Where a restore stopped: the last changelog offset applied per partition (Faust's convention:
    -1 for nothing), whether every partition reached the end offset it had when the restore began."""

    offsets: dict[TP, int]
    complete: bool
    records: int
    seconds: float


class ChangelogRestorer:
    """Reads changelog partitions from their next offset to the end offsets they had at the start, and
    writes each fetch of a partition as one batch. It stops early, with what it has written, when
    `still_wanted()` turns false (a rebalance began, the worker is stopping) or after `budget` seconds;
    nothing is written once `still_wanted()` is false."""

    def __init__(
        self,
        new_consumer: Callable[[], ChangelogConsumer],
        *,
        budget: float,
        still_wanted: Callable[[], bool],
        fetch_wait_ms: int = 500,
    ) -> None:
        self._new_consumer = new_consumer
        self._budget = budget
        self._still_wanted = still_wanted
        self._fetch_wait_ms = fetch_wait_ms

    async def restore(
        self,
        dbs: Mapping[TP, Callable[[], WritableDB]],
        applied: Mapping[TP, int],
        on_applied: Callable[[TP, int], None] = lambda tp, offset: None,
    ) -> Restored:
        """`dbs` gives each partition's RocksDB (asked again for every write: the store may have reopened
        it); `applied` the last offset each already holds (-1: none). `on_applied` hears every offset
        written, as it is written, so the caller's bookkeeping holds even if the restore is cancelled."""
        started = time.monotonic()
        reached = {tp: applied.get(tp, -1) for tp in dbs}
        count = 0
        if not dbs:
            return Restored(reached, True, 0, 0.0)
        consumer = self._new_consumer()
        await consumer.start()
        try:
            kafka_tps = {TopicPartition(tp.topic, tp.partition): tp for tp in dbs}
            consumer.assign(list(kafka_tps))
            ends = await consumer.end_offsets(list(kafka_tps))
            pending: dict[TopicPartition, TP] = {}
            for kafka_tp, tp in kafka_tps.items():
                start = reached[tp] + 1
                if start < ends[kafka_tp]:
                    consumer.seek(kafka_tp, start)
                    pending[kafka_tp] = tp
            deadline = started + self._budget
            while pending and time.monotonic() < deadline and self._still_wanted():
                fetched = await consumer.getmany(*pending, timeout_ms=self._fetch_wait_ms)
                for kafka_tp, tp in list(pending.items()):
                    # aiokafka moves the position past everything a fetch returned, and past what it
                    # skipped (control batches, a compacted batch's tail): all of it is accounted for.
                    position = await consumer.position(kafka_tp)
                    through = position - 1
                    if through <= reached[tp]:
                        continue
                    if not self._still_wanted():
                        break
                    records = fetched.get(kafka_tp, [])
                    write_records(dbs[tp](), records, through)
                    reached[tp] = through
                    on_applied(tp, through)
                    count += len(records)
                    if position >= ends[kafka_tp]:
                        del pending[kafka_tp]
            complete = not pending
        finally:
            await consumer.stop()
        seconds = time.monotonic() - started
        logger.info(
            "table partitions restored in bulk" if complete else "table partitions partly restored in bulk",
            extra={"partitions": len(dbs), "records": count, "seconds": round(seconds, 3), "complete": complete},
        )
        return Restored(reached, complete, count, seconds)

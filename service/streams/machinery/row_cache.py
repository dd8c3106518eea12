"""Rows changed in memory and written to their table at the worker's next barrier (`barrier.py`).

The operators' view changes with every order event, delivery command and result, and a tenant's list
of recent orders (a row of up to a few hundred kB) with every change of any of its orders. Written
whole for each change, these rows were the largest cost per delivery (JSON encoding, RocksDB and a
changelog record the size of the row). Here each change replaces the row in memory, reads see it at
once (read-your-writes inside the worker), and the barrier writes each changed row once: one
changelog record per changed key per barrier, the record cache of Kafka Streams.

A changed row is dropped only when its partition is revoked (its events are then unacknowledged, and
the partition's next owner reads them again); an event fetched before a rebalance changes nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any, Generic, TypeVar

from faust.streams import _current_event

R = TypeVar("R")
log = logging.getLogger(__name__)


class handling:
    """Faust's table writes go to the partition of the event being handled: both the changelog record
    (`Collection.partition_for_key`) and the RocksDB store (`Store._set`) read it from this context
    variable, which a stream sets while it yields an event. A row written after its event was handled
    is written as that event's (same key, same partition). A class rather than a generator: it runs
    once per row written."""

    __slots__ = ("event", "token")

    def __init__(self, event: Any) -> None:
        self.event = event

    def __enter__(self) -> None:
        self.token = _current_event.set(weakref.ref(self.event))

    def __exit__(self, *exc: object) -> None:
        _current_event.reset(self.token)


class PartitionEvent:
    """Stands for an event of `topic`'s `partition` where a table row is read or written outside any
    stream (a sweep): Faust takes the partition of a table read or write from the event being handled
    (`handling`). `topic` must have as many partitions as the table's changelog."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _PartitionMessage(topic, partition)


class _PartitionMessage:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class RowCache(Generic[R]):
    """key -> row of `table`, changed in memory; `write()` writes the changed rows.

    `is_current(event)` says whether an event was fetched in the group's current generation (an older
    one belongs to partitions that may have moved)."""

    def __init__(
        self,
        table: MutableMapping[str, R],
        *,
        cached: int,
        is_current: Callable[[Any], bool],
    ) -> None:
        self.table = table
        self.cached = cached
        self.is_current = is_current
        # Decoded rows, least recently used first: reading a row back from RocksDB for every change
        # (decoding it again) was about a tenth of a busy worker's time.
        self._rows: OrderedDict[str, R] = OrderedDict()
        self._dirty: dict[str, Any] = {}  # key -> the last event that changed its row

    def get(self, key: str) -> R | None:
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        return self.table.get(key)

    def put(self, key: str, row: R, event: Any) -> None:
        """Keep `row` as the key's row, written at the next barrier. Rows are replaced, never changed
        in place, so a row already handed to the table is never altered after the fact. An event from
        before a rebalance changes nothing: its partition's next owner reads it again."""
        if not self.is_current(event):
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        self._dirty[key] = event
        self._trim()

    def replace(self, key: str, row: R) -> None:
        """Change a row waiting to be written, still as the event that changed it last."""
        if key in self._dirty:
            self._rows[key] = row

    def changed_row(self, key: str) -> R | None:
        """The key's row if it waits to be written."""
        return self._rows[key] if key in self._dirty else None

    def write(self) -> int:
        """Write every changed row, each as the last event that changed it (its partition). No await
        inside: a rebalance cannot come between the writes. A write that raises leaves the rows not
        yet written changed, to be written at the next barrier."""
        written = 0
        for key, event in list(self._dirty.items()):
            with handling(event):
                self.table[key] = self._rows[key]
            del self._dirty[key]
            written += 1
        self._trim()
        return written

    def forget(self, revoked: set[Any]) -> None:
        """Partitions leave: their unwritten rows are dropped (the next owner reads their events again)."""
        self._dirty = {k: e for k, e in self._dirty.items() if e.message.tp not in revoked}
        self.drop_cached()

    def drop_cached(self) -> None:
        """Rows read before may be stale once partitions move (another worker may have written them
        meanwhile). Rows waiting to be written stay."""
        self._rows = OrderedDict((k, row) for k, row in self._rows.items() if k in self._dirty)

    def _trim(self) -> None:
        """Forget the least recently used rows beyond `cached`, never one waiting to be written."""
        extra = len(self._rows) - self.cached
        if extra <= 0:
            return
        # From the least recently used end, stopping once enough are found: scanning every row at
        # every change cost a busy worker about a twentieth of its time once `cached` was reached.
        doomed = []
        for key in self._rows:
            if key not in self._dirty:
                doomed.append(key)
                if len(doomed) == extra:
                    break
        for key in doomed:
            del self._rows[key]

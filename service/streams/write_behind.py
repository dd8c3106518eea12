"""Rows folded in memory and written to their table in batches; their messages acknowledged only after.

A tenant's list of recent orders is one row of up to a few hundred kB that changes with every
delivery of every order of the tenant. Written whole for each change, it was the largest cost per
delivery (JSON encoding, RocksDB and a changelog record the size of the row). Here each change is
folded into the row in memory and the row is written once per batch: once enough messages are
waiting, or a short time after the first one, whichever comes first.

Nothing is lost by waiting: a message is acknowledged only after the rows it changed are written
(Faust flushes the table's changelog records before it commits the offsets). Rows not yet written
when their partition is revoked are dropped with their messages unacknowledged, so that the next
owner reads them again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from faust.streams import _current_event

R = TypeVar("R")
log = logging.getLogger(__name__)


@contextmanager
def handling(event: Any) -> Iterator[None]:
    """Faust's table writes go to the partition of the event being handled: both the changelog record
    (`Collection.partition_for_key`) and the RocksDB store (`Store._set`) read it from this context
    variable, which a stream sets while it yields an event. A row written after its event was handled
    is written as that event's."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class WriteBehindRows(Generic[R]):
    """key -> row, written to `table` by `flush()`; the messages behind the changes are acked there."""

    def __init__(self, table: MutableMapping[str, R], *, cached: int, batch: int) -> None:
        self.table = table
        self.cached = cached
        self.batch = batch
        # Decoded rows, least recently used first: reading a row back from RocksDB for every change
        # (decoding it again) was about a tenth of a busy worker's time.
        self._rows: OrderedDict[str, R] = OrderedDict()
        self._dirty: dict[str, Any] = {}  # key -> the last event that changed it
        self._pending: list[Any] = []  # events whose changes are in memory only, in arrival order
        self._first_pending = asyncio.Event()

    def get(self, key: str) -> R | None:
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        return self.table.get(key)

    def put(self, key: str, row: R, event: Any) -> None:
        """Keep `row` as the key's row; written at the next flush. Rows are replaced, never changed in
        place, so a row already handed to the table is never altered after the fact."""
        self._rows[key] = row
        self._rows.move_to_end(key)
        self._dirty[key] = event

    def handled(self, event: Any) -> bool:
        """The event's changes are in memory; True when a batch is full and should be flushed now."""
        self._pending.append(event)
        self._first_pending.set()
        return len(self._pending) >= self.batch

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write every changed row, then acknowledge the events behind them. No await inside: a
        rebalance cannot come between the writes and the acks."""
        written = len(self._dirty)
        for key, event in self._dirty.items():
            with handling(event):
                self.table[key] = self._rows[key]
        self._dirty.clear()
        for event in self._pending:
            event.ack()
        self._pending.clear()
        self._first_pending.clear()
        while len(self._rows) > self.cached:
            self._rows.popitem(last=False)
        return written

    def forget(self, revoked: set[Any]) -> None:
        """Partitions leave: their unwritten rows and unacknowledged events are dropped (the next owner
        reads those messages again); the others' are written. The cache is emptied either way: a
        partition that comes back may have been written by another worker meanwhile."""
        self._dirty = {k: e for k, e in self._dirty.items() if e.message.tp not in revoked}
        self._pending = [e for e in self._pending if e.message.tp not in revoked]
        self.flush()
        self._rows.clear()

    def drop_cached(self) -> None:
        """Partitions arrive: rows read before may be stale (another worker may have written them
        meanwhile). Rows waiting to be written stay."""
        self._rows = OrderedDict((k, row) for k, row in self._rows.items() if k in self._dirty)

    async def flush_after(self, seconds: float) -> None:
        """Forever: once an event waits, flush `seconds` later (a full batch is flushed sooner by the
        agent). Bounds how stale the table's row can be."""
        while True:
            await self._first_pending.wait()
            await asyncio.sleep(seconds)
            try:
                self.flush()
            except Exception:  # kept unwritten and unacknowledged: the next flush tries again
                log.exception("writing rows failed", extra={"rows": len(self._dirty)})

"""Rows folded in memory and written to their table in batches; their messages acknowledged only after.

A tenant's list of recent orders is one row of up to a few hundred kB that changes with every
delivery of every order of the tenant. Written whole for each change, it was the largest cost per
delivery (JSON encoding, RocksDB and a changelog record the size of the row). Here each change is
folded into the row in memory and the row is written once per batch: once enough messages are
waiting, or a short time after the first one, whichever comes first.

A message is acknowledged only after the rows it changed are written to the table (RocksDB and the
changelog record handed to Faust's producer, which Faust flushes before it commits, as it does for
every table write). Nothing is written while the group rebalances. Rows not yet written when their
partition is revoked are dropped with their messages unacknowledged, and a message fetched before a
rebalance is neither folded nor acknowledged after it, so the partition's next owner reads them all
again. A write that fails is tried again with a growing pause; meanwhile the agent stops reading
once a batch is full, instead of holding ever more in memory.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from faust.streams import _current_event
from tenacity import AsyncRetrying, RetryCallState, wait_exponential

R = TypeVar("R")
log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.1  # then growing, up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 5.0
REBALANCE_POLL_SECONDS = 0.05


def _log_failed_write(state: RetryCallState) -> None:
    failed = state.outcome.exception() if state.outcome is not None else None
    log.warning("writing rows failed; trying again", extra={"error": type(failed).__name__})


@contextmanager
def handling(event: Any) -> Iterator[None]:
    """Faust's table writes go to the partition of the event being handled: both the changelog record
    (`Collection.partition_for_key`) and the RocksDB store (`Store._set`) read it from this context
    variable, which a stream sets while it yields an event. A row written after its event was handled
    is written as that event's (same key, same partition)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class WriteBehindRows(Generic[R]):
    """key -> row, written to `table` by `flush()`; the events behind the changes are acked there.

    `rebalancing()` says when nothing may be written; `is_current(event)` says whether an event was
    fetched in the group's current generation (an older one belongs to partitions that moved)."""

    def __init__(
        self,
        table: MutableMapping[str, R],
        *,
        cached: int,
        batch: int,
        rebalancing: Callable[[], bool],
        is_current: Callable[[Any], bool],
    ) -> None:
        self.table = table
        self.cached = cached
        self.batch = batch
        self.rebalancing = rebalancing
        self.is_current = is_current
        # Decoded rows, least recently used first: reading a row back from RocksDB for every change
        # (decoding it again) was about a tenth of a busy worker's time.
        self._rows: OrderedDict[str, R] = OrderedDict()
        self._dirty: dict[str, Any] = {}  # key -> the last event that changed its row
        self._pending: list[Any] = []  # events whose changes are in memory only, in arrival order
        self._first_pending = asyncio.Event()

    def get(self, key: str) -> R | None:
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        return self.table.get(key)

    def put(self, key: str, row: R, event: Any) -> None:
        """Keep `row` as the key's row, written at the next flush. Rows are replaced, never changed in
        place, so a row already handed to the table is never altered after the fact. An event from
        before a rebalance changes nothing: its partition's next owner reads it again."""
        if not self.is_current(event):
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        self._dirty[key] = event
        self._trim()

    def handled(self, event: Any) -> bool:
        """The event's changes are in memory; True when a batch is full and should be written now."""
        if self.is_current(event):
            self._pending.append(event)
            self._first_pending.set()
        return len(self._pending) >= self.batch

    async def done(self, event: Any) -> None:
        """The agent's step after an event is folded: a full batch is written before the next is read."""
        if self.handled(event):
            await self.write()

    def flush(self) -> bool:
        """Write every changed row, then acknowledge the events behind them; False (nothing written)
        while the group rebalances. No await inside: a rebalance cannot come between the writes and
        the acks. A write that raises leaves every row changed and every event unacknowledged."""
        if self.rebalancing():
            return False
        for key, event in self._dirty.items():
            with handling(event):
                self.table[key] = self._rows[key]
        self._dirty.clear()
        for event in self._pending:
            event.ack()
        self._pending.clear()
        self._first_pending.clear()
        self._trim()
        return True

    async def write(self) -> None:
        """Flush until everything waiting is written: after a rebalance, and after failed writes (tried
        again with a growing pause; a disk or a broker that fails is waited out, as elsewhere)."""
        while self._pending or self._dirty:
            async for attempt in AsyncRetrying(
                wait=wait_exponential(multiplier=RETRY_FIRST_SECONDS, max=RETRY_MAX_SECONDS),
                before_sleep=_log_failed_write,
            ):
                with attempt:
                    written = self.flush()
            if written:
                return
            await asyncio.sleep(REBALANCE_POLL_SECONDS)

    def forget(self, revoked: set[Any]) -> None:
        """Partitions leave: their unwritten rows and unacknowledged events are dropped (the next owner
        reads those messages again). The rest waits for the rebalance to end."""
        self._dirty = {k: e for k, e in self._dirty.items() if e.message.tp not in revoked}
        self._pending = [e for e in self._pending if e.message.tp not in revoked]
        if not self._pending:
            self._first_pending.clear()
        self.drop_cached()

    def drop_cached(self) -> None:
        """Rows read before may be stale once partitions move (another worker may have written them
        meanwhile). Rows waiting to be written stay."""
        self._rows = OrderedDict((k, row) for k, row in self._rows.items() if k in self._dirty)

    async def write_after(self, seconds: float) -> None:
        """Forever: once an event waits, write `seconds` later (a full batch is written sooner by the
        agent). Bounds how stale the table's row is, rebalances and failed writes aside."""
        while True:
            await self._first_pending.wait()
            await asyncio.sleep(seconds)
            await self.write()

    def _trim(self) -> None:
        """Forget the least recently used rows beyond `cached`, never one waiting to be written."""
        extra = len(self._rows) - self.cached
        if extra <= 0:
            return
        for key in [k for k in self._rows if k not in self._dirty][:extra]:
            del self._rows[key]

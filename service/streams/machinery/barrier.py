"""The worker's barrier: what its stages caused is settled together, and only then are the input
records behind it acknowledged.

A stage handles its records one after another without waiting for the broker: a send is handed to
the producer at once and its future kept (`Barrier.send`), rows change in memory (`RowCache`), and
the record is held (`Barrier.hold`). About every 0.25 s (the records flow on at once: only their
acknowledgement waits, and Faust commits every few seconds anyway), or as soon as `max_held`
records are held, one round settles what was held:

1. hooks turn changed rows into more sends (a tenant's list entry for each changed order view);
2. every send future is awaited; a send that failed on broker trouble is sent again until the
   broker has it, one refused for its content parks the record that caused it in invalid-events;
3. every changed row is written once (its changelog record handed to Faust's producer), never while
   the group rebalances;
4. the producer is flushed: every table write is acknowledged by the broker (or the worker stops
   committing: `faust_fixes.SettledFlushProducer`);
5. only then are the held records acknowledged, in the order they were held (offset order within a
   partition: each partition is read by one stage, which holds its records in order).

A failure in 2-4 acknowledges nothing of the round; the round is done again. A record fetched before
a rebalance is never acknowledged after it (its partition is read again from its committed offset),
and a revoked partition's changed rows are dropped. Rows are written only after the sends of their
round are acknowledged, so a row never says more than the broker has: a restart that reads a record
again finds the table as it was before that record's sends (the order index is sent only for a new
order: `streams/stages/ingest.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from service.app import app
from service.streams.machinery.publish import encode_key, encode_value, is_infrastructure_error
from service.streams.machinery.rejects import crashes_noticed, guarded, reject
from service.streams.machinery.row_cache import RowCache

log = logging.getLogger(__name__)

SETTLE_AFTER_SECONDS = 0.25
MAX_HELD = 1000
RETRY_FIRST_SECONDS = 0.2  # then doubling, up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 10.0
REBALANCE_POLL_SECONDS = 0.05
STOP_SETTLE_SECONDS = 5.0


@dataclass(eq=False)
class Sent:
    """One send of a round: what was sent (to send it again) and the record that caused it."""

    future: asyncio.Future[Any]
    topic: Any
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    cause: Any | None


def fetched_in_this_generation(event: Any) -> bool:
    """Faust's own test for a message fetched before the last rebalance (faust/streams.py)."""
    return bool(event.message.generation_id == app.consumer_generation_id)


class Barrier:
    def __init__(
        self,
        *,
        settle_after: float,
        max_held: int,
        flush: Callable[[], Awaitable[None]],
        rebalancing: Callable[[], bool],
        is_current: Callable[[Any], bool],
        park: Callable[[Any, list[str]], Awaitable[None]],
    ) -> None:
        self.settle_after = settle_after
        self.max_held = max_held
        self.flush = flush
        self.rebalancing = rebalancing
        self.is_current = is_current
        self.park = park
        self.caches: list[RowCache[Any]] = []
        self.hooks: list[Callable[[], Awaitable[None]]] = []
        self._held: list[Any] = []
        self._sends: list[Sent] = []
        self._lock = asyncio.Lock()
        self._due = asyncio.Event()  # something waits to be settled
        self._now = asyncio.Event()  # a full round: settle without waiting
        self._task: asyncio.Task[None] | None = None

    def cache(self, rows: RowCache[Any]) -> RowCache[Any]:
        """Rows written at every round (before the held records are acknowledged)."""
        self.caches.append(rows)
        return rows

    def before_write(self, hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run `hook` at the start of every round: it may send (`send`) and change rows."""
        self.hooks.append(hook)
        return hook

    async def send(
        self,
        topic: Any,
        key: str | bytes | None,
        value: Any,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        cause: Any | None = None,
    ) -> None:
        """Hand one record to the producer now; the round waits for the broker to have it."""
        k, v = encode_key(key), encode_value(value)
        future = await topic.send(key=k, value=v, headers=headers)
        self._sends.append(Sent(future, topic, k, v, headers, cause))
        self._wake()

    def hold(self, event: Any) -> None:
        """Acknowledge `event` once everything sent and changed so far is settled."""
        self._held.append(event)
        self._wake()
        if len(self._held) >= self.max_held:
            self._now.set()

    def held(self) -> int:
        return len(self._held)

    def settling(self) -> bool:
        return self._lock.locked()

    async def room(self) -> None:
        """A stage's wait after holding a record: a full round is settled before more is read, so at
        most two rounds' records are in memory (one settling, one filling)."""
        if len(self._held) >= self.max_held:
            await self.settle()

    def forget(self, revoked: set[Any]) -> None:
        """Partitions leave: their held records and changed rows go unacknowledged to the next owner."""
        self._held = [e for e in self._held if e.message.tp not in revoked]
        for rows in self.caches:
            rows.forget(revoked)

    def drop_cached(self) -> None:
        for rows in self.caches:
            rows.drop_cached()

    def _wake(self) -> None:
        self._due.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.settle_after)
            try:
                await self.settle()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Nothing of the round was acknowledged: the next round takes its records again.
                log.exception("settling a round failed; trying again")
                await asyncio.sleep(RETRY_FIRST_SECONDS)

    async def settle(self) -> None:
        """One round: sends acknowledged, rows written and flushed, then the held records acknowledged."""
        async with self._lock:
            self._due.clear()
            self._now.clear()
            held, self._held = self._held, []
            sends: list[Sent] = []
            try:
                for hook in self.hooks:
                    await hook()
                sends, self._sends = self._sends, []
                await self._settle_sends(sends)
                await self._write_rows()
                await self.flush()
            except BaseException:
                # Acknowledge nothing of this round: its records and sends go first into the next one
                # (a send that succeeded is not sent again; one that failed is).
                self._held = held + self._held
                self._sends = sends + self._sends
                self._due.set()
                raise
            for event in held:
                if self.is_current(event):
                    event.ack()

    async def _settle_sends(self, sends: list[Sent]) -> None:
        wait = RETRY_FIRST_SECONDS
        while sends:
            await asyncio.wait([s.future for s in sends])
            again: list[Sent] = []
            for sent in sends:
                failed = None if sent.future.cancelled() else sent.future.exception()
                if sent.future.cancelled() or (failed is not None and is_infrastructure_error(failed)):
                    again.append(sent)
                elif failed is not None:
                    await self._refused(sent, failed)
            if not again:
                return
            log.warning("the broker refused sends; sending them again", extra={"sends": len(again)})
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_MAX_SECONDS)
            sends = [await self._resend(sent) for sent in again]

    async def _resend(self, sent: Sent) -> Sent:
        try:
            sent.future = await sent.topic.send(key=sent.key, value=sent.value, headers=sent.headers)
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            sent.future = failed
        return sent

    async def _refused(self, sent: Sent, failed: BaseException) -> None:
        """A send the broker refuses for its content (too large, say) will never pass: the record that
        caused it is parked with the reason instead of holding its partition forever."""
        log.error("a send was refused for its content", extra={"error": type(failed).__name__})
        if sent.cause is not None:
            await self.park(sent.cause.message, [f"internal error while handling the event: {type(failed).__name__}"])

    async def _write_rows(self) -> None:
        # Faust shows a rebalance as a flag (app.rebalancing), not as something to wait on.
        while self.rebalancing():  # noqa: ASYNC110
            await asyncio.sleep(REBALANCE_POLL_SECONDS)
        for rows in self.caches:
            rows.write()


barrier = Barrier(
    settle_after=SETTLE_AFTER_SECONDS,
    max_held=MAX_HELD,
    flush=lambda: app.producer.flush(),
    rebalancing=lambda: bool(app.rebalancing),
    is_current=fetched_in_this_generation,
    park=lambda message, reasons: reject(message, reasons),
)


async def handle_held(stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """A stage's loop: every record through `handle` (guarded), without waiting for the broker, then
    held until the barrier has settled what it caused."""
    with crashes_noticed():
        try:
            async for event in stream.noack().events():
                await guarded(event, handle)
                barrier.hold(event)
                await barrier.room()
        finally:
            # What is settled now is not read again after a stop; what is not, is.
            await settle_at_stop()


async def settle_at_stop() -> None:
    """At a stop, settle what is held (and wait for a round under way), so that Faust's last commit
    includes it; what cannot be settled in a few seconds is read again after the restart."""
    if not barrier.held() and not barrier.settling():
        return
    try:
        await asyncio.wait_for(asyncio.shield(barrier.settle()), STOP_SETTLE_SECONDS)
    except Exception:
        log.warning("records held at stop were not settled: they are read again")


async def _partitions_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    barrier.forget(set(args[0] if args else kwargs.get("revoked", ())))


async def _partitions_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
    barrier.drop_cached()


# faust's stub wants a positional-only sender and a `signal` keyword; the receiver takes both as given.
app.on_partitions_revoked.connect(cast(Any, _partitions_revoked))
app.on_partitions_assigned.connect(cast(Any, _partitions_assigned))

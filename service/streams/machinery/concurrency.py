"""An agent loop that works many messages at once and still never loses one.

Each message gets its own task, so a slow destination or a retry waiting for its due time holds
one task, not the stream. Messages are acknowledged in offset order per partition
(`ordered_acks.py`), so a commit never passes a message still being worked on. Stopping the worker
gives running work a bounded grace period, then cancels the rest without acknowledging it: Faust's
commit on stop (immediate with `stream_wait_empty=False`) then stops before the first unfinished
message, which the next owner reads again. A revoked partition's work is cancelled the same way,
so two workers never run the same message at once for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from service.app import app, settings
from service.streams.machinery.barrier import barrier, settle_at_stop
from service.streams.machinery.ordered_acks import Entry, InOrderAcks
from service.streams.machinery.rejects import crashes_noticed, guarded
from service.streams.machinery.sequencing import Sequencer, Turn

log = logging.getLogger(__name__)


_idle: set[asyncio.Task[Any]] = set()


@contextmanager
def idle() -> Iterator[None]:
    """Marks the current task as waiting with nothing under way (a retry before its due time): at stop
    it is cancelled at once instead of holding the worker for the grace period."""
    task = asyncio.current_task()
    if task is not None:
        _idle.add(task)
    try:
        yield
    finally:
        _idle.discard(cast(asyncio.Task[Any], task))


class InFlight:
    """One agent's messages being worked on, with their tasks."""

    def __init__(self, name: str, grace_seconds: float = 0.0) -> None:
        self.name = name
        self.grace_seconds = grace_seconds
        self.acks = InOrderAcks(ack=barrier.hold)
        self.tasks: dict[asyncio.Task[None], Entry] = {}

    def start(
        self, event: Any, handle: Callable[[Any], Awaitable[None]], on_done: Callable[[], None], turn: Turn | None
    ) -> None:
        entry = self.acks.add(event)
        task = asyncio.create_task(_in_turn(turn, guarded(event, handle)))
        self.tasks[task] = entry

        def finished(task: asyncio.Task[None]) -> None:
            self.tasks.pop(task, None)
            on_done()
            if task.cancelled():
                self.acks.abandoned(entry)
            elif (failure := task.exception()) is not None:
                # Neither handled nor parked (a refusal that could not be published): read again by
                # the partition's next owner or after a restart, never acknowledged.
                log.error(
                    "event neither handled nor parked: its partition waits for a restart",
                    extra={"agent": self.name, "offset": entry.event.message.offset, "error": type(failure).__name__},
                )
                self.acks.abandoned(entry)
            else:
                self.acks.finished(entry)

        task.add_done_callback(finished)

    def cancel(self, tps: set[Any] | None = None) -> int:
        """Cancel the work of these partitions (all when None) and forget their messages."""
        chosen = [t for t, e in self.tasks.items() if tps is None or e.event.message.tp in tps]
        for task in chosen:
            task.cancel()
        if tps is not None:
            self.acks.forget(tps)
        return len(chosen)

    async def drain(self, grace_seconds: float) -> None:
        """Let running work finish for up to `grace_seconds`, then cancel what is left (unacknowledged)."""
        for task in [t for t in self.tasks if t in _idle]:
            task.cancel()
        if self.tasks:
            log.info("finishing work in flight", extra={"agent": self.name, "tasks": len(self.tasks)})
            await asyncio.wait(list(self.tasks), timeout=grace_seconds)
        left = list(self.tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=5.0)
            log.warning("work cancelled at stop: it will be done again", extra={"agent": self.name, "tasks": len(left)})


_active: list[InFlight] = []
_stopping: list[bool] = [False]


async def finish_before_stop() -> None:
    """The worker begins to stop: no new work starts, running work gets its grace, and the barrier
    settles what finished, all before Faust closes the tables and makes its last commit (it closes the
    tables before it stops the agents): so what finished in time is not done again after the restart."""
    _stopping[0] = True
    await asyncio.gather(*(inflight.drain(inflight.grace_seconds) for inflight in list(_active)))
    await settle_at_stop()


app.before_stop(finish_before_stop)


def revoked_partitions(args: tuple[Any, ...], kwargs: dict[str, Any]) -> set[Any]:
    """The partitions of an `on_partitions_revoked` signal, however faust passed them."""
    return set(args[0] if args else kwargs.get("revoked", ()))


async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    revoked = revoked_partitions(args, kwargs)
    for inflight in _active:
        cancelled = inflight.cancel(revoked)
        if cancelled:
            log.info("work of revoked partitions cancelled", extra={"agent": inflight.name, "tasks": cancelled})


# faust's stub wants a positional-only sender and a `signal` keyword; the receiver takes both as given.
app.on_partitions_revoked.connect(cast(Any, _on_revoked))


async def _in_turn(turn: Turn | None, work: Awaitable[None]) -> None:
    try:
        if turn is not None:
            await turn.wait()
        await work
    finally:
        if turn is not None:
            turn.release()


async def handle_concurrently(
    stream: Any,
    handle: Callable[[Any], Awaitable[None]],
    *,
    name: str,
    sequence_by: Callable[[Any], Hashable | None] | None = None,
) -> None:
    """Run `handle` for every message, up to OUTBOUND_MAX_MESSAGES_IN_FLIGHT at once, acknowledging
    in offset order; at a stop running work gets the shutdown grace. Messages with the same
    `sequence_by` key (None: no key) are handled one after another, in order."""
    inflight = InFlight(name, settings.shutdown_grace_seconds)
    room = asyncio.Semaphore(settings.max_messages_in_flight)
    turns = Sequencer()
    _active.append(inflight)
    try:
        with crashes_noticed():
            async for event in stream.noack().events():
                if _stopping[0]:
                    # Left unacknowledged: read again after the restart. The agent's stop ends the wait.
                    await asyncio.Event().wait()
                await room.acquire()
                key = sequence_by(event) if sequence_by is not None else None
                inflight.start(event, handle, room.release, turns.register(key) if key is not None else None)
    finally:
        _active.remove(inflight)
        await asyncio.shield(inflight.drain(inflight.grace_seconds))
        await settle_at_stop()

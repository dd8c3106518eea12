"""How many delivery attempts run at once, and how fast they start: per integration first, then for
the whole worker.

An integration's rate (`maxPerSecond`, `planning/pacing.py`) is waited for first, holding nothing;
then one of its own slots (`maxConcurrent`'s share, at most OUTBOUND_INTEGRATION_CONCURRENCY), then a
worker-wide slot. So deliveries that wait on one tenant's rate or slow destination wait without
holding a slot every other tenant needs. A wait for the rate longer than the caller allows is not
waited at all: `Paced` says when the attempt's turn would come, and the caller parks it on the retry
path until then (its in-flight window is not filled with deliveries that only wait).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from service.contracts import Integration
from service.planning import pacing
from service.planning.pacing import Share

# A worker that owns no partition (a moment of a rebalance) has no share of a rate: it looks again.
NO_SHARE_WAIT_SECONDS = 1.0


class Paced(Exception):
    """The attempt's turn for its integration's rate is further off than the caller waits."""

    def __init__(self, due: float) -> None:
        super().__init__(f"paced until {due:.3f}")
        self.due = due


class Gate:
    """A first-come, first-served semaphore whose size can change (a rebalance changes a worker's share
    of `maxConcurrent`): a smaller size lets no new holder in until enough have left."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.held < self.size and not self._waiters:
            self.held += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # let in just before the cancellation: pass it on
            raise

    def release(self) -> None:
        self.held -= 1
        self._let_in()

    def resize(self, size: int) -> None:
        self.size = size
        self._let_in()

    def _let_in(self) -> None:
        while self._waiters and self.held < self.size:
            turn = self._waiters.popleft()
            if not turn.done():  # a cancelled waiter left its place
                self.held += 1
                turn.set_result(None)


@dataclass
class _Pace:
    """Where an integration's next slot search begins on this worker (slots once taken stay taken)."""

    after: int = 0


class DeliverySlots:
    def __init__(
        self,
        total: int,
        per_integration: int,
        share: Callable[[], Share] | None = None,
        margin: float = pacing.MARGIN_SECONDS,
    ) -> None:
        self._margin = margin
        self._total = asyncio.Semaphore(total)
        self._per_integration = per_integration
        self._gates: dict[str, Gate] = {}
        self._paces: dict[str, _Pace] = {}
        self._share = share or (lambda: Share(frozenset({0}), 1))

    @asynccontextmanager
    async def hold(self, integration: Integration, *, wait_at_most: float | None = None) -> AsyncIterator[None]:
        """Inside: the attempt may run. Raises `Paced` (holding nothing) when the integration's rate
        would keep it waiting longer than `wait_at_most` seconds (None: waits as long as it takes)."""
        rate = integration.maxPerSecond
        slot = await self._wait_for_rate(integration, rate, wait_at_most) if rate else None
        gate = self._gate(integration)
        await gate.acquire()
        try:
            while True:
                await self._total.acquire()
                if slot is None or rate is None or pacing.on_time(slot, rate, time.time(), self._margin):
                    break
                # It waited for a worker slot past its own: it takes the next one, holding only the
                # integration's slot meanwhile (starting late in an old slot would bunch the starts).
                self._total.release()
                slot = await self._wait_for_rate(integration, rate, None)
            try:
                yield
            finally:
                self._total.release()
        finally:
            gate.release()

    def room(self, integration: Integration | None, horizon: float) -> int | None:
        """How many attempts of the integration may begin on this worker within `horizon` seconds
        (None: its rate does not limit them)."""
        if integration is None or not integration.maxPerSecond:
            return None
        pace = self._paces.setdefault(integration.id, _Pace())
        return pacing.slots_within(
            integration.id,
            integration.maxPerSecond,
            self._share(),
            after=pace.after,
            now=time.time(),
            horizon=horizon,
            margin=self._margin,
        )

    async def _wait_for_rate(self, integration: Integration, rate: float, wait_at_most: float | None) -> int:
        """Take the integration's next slot of this worker and sleep until it begins."""
        pace = self._paces.setdefault(integration.id, _Pace())
        while True:
            now = time.time()
            slot = pacing.next_slot(integration.id, rate, self._share(), after=pace.after, now=now, margin=self._margin)
            if slot is None:
                if wait_at_most is not None:
                    raise Paced(now + NO_SHARE_WAIT_SECONDS)
                await asyncio.sleep(NO_SHARE_WAIT_SECONDS)
                continue
            begins = pacing.slot_time(slot, rate, self._margin)
            if wait_at_most is not None and begins - now > wait_at_most:
                raise Paced(begins)  # not taken: the slot stays free for an attempt that is due
            pace.after = slot + 1
            await asyncio.sleep(max(0.0, begins - time.time()))
            return slot

    def _gate(self, integration: Integration) -> Gate:
        size = self._per_integration
        if integration.maxConcurrent is not None:
            size = pacing.concurrency(integration.maxConcurrent, self._share(), size)
        gate = self._gates.get(integration.id)
        if gate is None:
            gate = self._gates[integration.id] = Gate(size)
        elif gate.size != size:
            gate.resize(size)
        return gate

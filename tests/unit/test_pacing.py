"""An integration's rate and concurrency shared out among the workers by the partitions they own; the
slots an attempt waits for without holding anything; the lines parked behind a paced delivery."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.contracts import DeliveryCommand, Integration
from service.destinations.slots import DeliverySlots, Gate, Paced
from service.planning import pacing
from service.planning.pacing import MARGIN_SECONDS, ON_TIME_SECONDS, Share
from service.streams.state.parked import FOLLOW_SECONDS, Parked

START = 1_780_000_000.0  # an instant in 2026, seconds since the epoch


def starts_of(
    integration_id: str, rate: float, share: Share, seconds: float, late: list[float], margin: float = MARGIN_SECONDS
) -> list[float]:
    """A worker that starts an attempt in every slot it owns, each `late[i % len(late)]` after its slot."""
    starts, after, now, i = [], 0, START, 0
    while True:
        slot = pacing.next_slot(integration_id, rate, share, after=after, now=now, margin=margin)
        assert slot is not None
        begins = pacing.slot_time(slot, rate, margin)
        if begins > START + seconds:
            return starts
        start = begins + late[i % len(late)]
        assert pacing.on_time(slot, rate, start, margin)
        starts.append(start)
        after, now, i = slot + 1, begins, i + 1


def most_in_a_second(starts: list[float]) -> int:
    """The most starts any half-open window of one second holds (windows begin at a start)."""
    ordered = sorted(starts)
    return max((sum(1 for s in ordered if a <= s < a + 1.0) for a in ordered), default=0)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(1, 20),
    partitions=st.integers(1, 12),
    workers=st.integers(1, 4),
    margin=st.sampled_from([0.0, MARGIN_SECONDS, 0.4]),
    data=st.data(),
)
def test_the_workers_together_never_start_more_than_the_rate_in_any_second(rate, partitions, workers, margin, data):
    # Every partition to one worker (one of them may own none), each worker late by up to the tolerance.
    owners = data.draw(st.lists(st.integers(0, workers - 1), min_size=partitions, max_size=partitions))
    late = data.draw(st.lists(st.floats(0, ON_TIME_SECONDS), min_size=1, max_size=5))
    starts: list[float] = []
    for worker in range(workers):
        owned = frozenset(p for p, o in enumerate(owners) if o == worker)
        if owned:
            starts += starts_of("acme-hook", rate, Share(owned, partitions), 6.0, late, margin)
    assert most_in_a_second(starts) <= rate
    # ... and the margin is left for the receiver's clock to see them closer: rate + 1 starts span 1 s + it.
    ordered = sorted(starts)
    spans = [b - a for a, b in zip(ordered, ordered[rate:], strict=False)]
    assert min(spans, default=2.0) >= 1.0 + margin - 1e-6


def test_the_shares_add_up_to_the_rate_and_each_is_its_partitions_part():
    rate, seconds = 5.0, 60.0
    a = starts_of("acme-hook", rate, Share(frozenset({0, 1, 2, 3}), 6), seconds, [0.0])
    b = starts_of("acme-hook", rate, Share(frozenset({4, 5}), 6), seconds, [0.0])
    assert set(a).isdisjoint(b)
    assert len(a) + len(b) == pytest.approx(seconds / pacing.interval(rate), abs=2)
    assert pacing.interval(rate) == pytest.approx(0.24)  # 5/s: a start every 0.24 s by default
    assert len(a) / (len(a) + len(b)) == pytest.approx(4 / 6, abs=0.02)


def test_integrations_fall_on_different_partitions_at_the_same_instant():
    owners = {pacing.owner(1000, f"hook-{n}", 6) for n in range(30)}
    assert len(owners) > 1


def test_a_worker_without_partitions_has_no_slot():
    assert pacing.next_slot("acme-hook", 5.0, Share(frozenset(), 6), after=0, now=START) is None
    assert pacing.slots_within("acme-hook", 5.0, Share(frozenset(), 6), after=0, now=START, horizon=10) == 0


def test_the_next_slot_is_not_before_the_last_taken_nor_begun_already():
    share = Share(frozenset({0}), 1)
    first = pacing.next_slot("h", 5.0, share, after=0, now=START)
    assert first is not None and pacing.slot_time(first, 5.0) >= START
    assert pacing.slot_time(first, 5.0) - START < pacing.interval(5.0)
    assert pacing.next_slot("h", 5.0, share, after=first + 3, now=START) == first + 3


def test_slots_within_a_horizon_are_counted_from_the_last_taken():
    share = Share(frozenset({0}), 1)
    now = pacing.slot_time(1000, 2.0)  # a slot begins now; 0.6 s apart: 0, 0.6, … 2.4 within 2.5 s
    assert pacing.slots_within("h", 2.0, share, after=0, now=now, horizon=2.5) == 5
    assert pacing.slots_within("h", 2.0, share, after=1002, now=now, horizon=2.5) == 3


def test_an_attempt_starts_in_its_slot_or_just_after_never_before_or_late():
    begins = pacing.slot_time(4242, 5.0)
    assert pacing.on_time(4242, 5.0, begins)
    assert pacing.on_time(4242, 5.0, begins + ON_TIME_SECONDS)
    assert not pacing.on_time(4242, 5.0, begins + ON_TIME_SECONDS + 0.01)
    assert not pacing.on_time(4242, 5.0, begins - 0.01)


def test_max_concurrent_is_shared_rounded_down_at_least_one_never_above_the_workers_own_limit():
    half = Share(frozenset({0, 1, 2}), 6)
    assert pacing.concurrency(None, half, 2) == 2
    assert pacing.concurrency(4, half, 8) == 2
    assert pacing.concurrency(5, half, 8) == 2
    assert pacing.concurrency(1, half, 8) == 1  # a worker with deliveries can always make them
    assert pacing.concurrency(100, half, 8) == 8
    assert pacing.concurrency(3, Share(frozenset(range(6)), 6), 8) == 3


def hook(**fields) -> Integration:
    return Integration.model_validate(
        {
            "id": fields.pop("id", "acme-hook"),
            "tenant": "acme",
            "type": "zapier",
            "enabled": True,
            "events": ["order.created"],
            "settings": {},
            **fields,
        }
    )


async def test_a_turn_beyond_the_callers_wait_is_refused_at_once_and_takes_nothing():
    slots = DeliverySlots(1, 2)
    limited = hook(maxPerSecond=1.0)
    async with slots.hold(limited, wait_at_most=5.0):
        pass  # the first slot, within a second
    began = time.monotonic()
    with pytest.raises(Paced) as paced:
        async with slots.hold(limited, wait_at_most=0.0):
            raise AssertionError("not let in")
    assert time.monotonic() - began < 0.1
    assert paced.value.due > time.time()
    # It took neither its slot of the rate nor the worker's only slot: another integration runs at once.
    async with asyncio.timeout(0.5), slots.hold(hook(id="other-hook")):
        pass
    assert slots.room(limited, 1.2) == 1


async def test_a_delivery_waiting_for_its_rate_holds_no_worker_slot():
    slots = DeliverySlots(1, 2)
    limited = hook(maxPerSecond=1.0)
    async with slots.hold(limited):
        pass
    waiting = asyncio.create_task(slots.hold(limited).__aenter__())  # its next slot is ~1.1 s away
    await asyncio.sleep(0.1)
    async with asyncio.timeout(0.5), slots.hold(hook(id="other-hook")):
        pass
    waiting.cancel()


async def test_attempts_of_a_limited_integration_begin_one_slot_apart():
    slots = DeliverySlots(8, 8)
    limited = hook(maxPerSecond=10.0)
    began: list[float] = []

    async def one() -> None:
        async with slots.hold(limited):
            began.append(time.time())

    await asyncio.gather(*(one() for _ in range(6)))
    gaps = [b - a for a, b in itertools.pairwise(began)]
    assert min(gaps) >= pacing.interval(10.0) - ON_TIME_SECONDS


async def test_a_gate_made_smaller_lets_no_one_in_until_enough_have_left():
    gate = Gate(2)
    await gate.acquire()
    await gate.acquire()
    gate.resize(1)
    waiter = asyncio.create_task(gate.acquire())
    gate.release()
    await asyncio.sleep(0.01)
    assert not waiter.done()  # one holds it: the new size
    gate.release()
    await asyncio.wait_for(waiter, 1.0)
    assert gate.held == 1


async def test_a_cancelled_waiter_of_a_gate_leaves_its_place():
    gate = Gate(1)
    await gate.acquire()
    cancelled = asyncio.create_task(gate.acquire())
    after = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    gate.release()
    await asyncio.wait_for(after, 1.0)
    assert gate.held == 1


def command(delivery: str, order: str | None = "o1", attempt: int = 1) -> DeliveryCommand:
    return DeliveryCommand(
        deliveryId=delivery,
        integrationId="acme-hook",
        integrationType="zapier",
        tenant="acme",
        eventType="order.created",
        eventId="e1",
        recipeId="r1",
        orderId=order,
        files=[],
        attempt=attempt,
        createdAt=datetime(2026, 12, 2, tzinfo=UTC),
    )


def test_a_later_delivery_of_a_parked_line_is_due_after_it_until_it_has_run():
    parked = Parked()
    assert parked.due_after(command("d2")) is None
    parked.add(command("d1"), 100.0, partition=3)
    parked.add(command("d3", order="o2"), 50.0, partition=3)
    assert parked.due_after(command("d2")) == pytest.approx(100.0 + FOLLOW_SECONDS)
    parked.add(command("d2"), 100.0 + FOLLOW_SECONDS, partition=3)
    parked.done(command("d1"))
    assert parked.due_after(command("d4")) == pytest.approx(100.0 + 2 * FOLLOW_SECONDS)
    parked.done(command("d2"))
    assert parked.due_after(command("d4")) is None
    assert parked.due_after(command("r", order=None)) is None  # the raw feed keeps no line
    parked.revoked({3})
    assert parked.lines() == 0

"""How fast, and how many at once, one integration's attempts may start across the whole deployment.

An integration's `maxPerSecond` is cut into slots on the wall clock, one every
`(1 + margin + ON_TIME_SECONDS) / maxPerSecond` seconds, the same slots on every worker. Each slot
belongs to one partition of `deliveries` (slot index plus a fixed offset of the integration, modulo
the partition count), and a worker may start an attempt only in a slot of a partition it owns: the
workers' slots never overlap, so their starts together never come closer than one slot apart,
whatever each one's load, and a worker owning half the partitions has half the rate. No message
between the workers is needed: the group's assignment already gives every partition to exactly one
live member, and a rebalance re-shares at once.
`deliveries-retry` is co-partitioned with `deliveries`, so the worker that owns a partition's
retries owns its slots too.

An attempt starts in its slot or within `ON_TIME_SECONDS` after it; one that missed that (it waited
for a slot of the worker) takes the next free slot. So any `maxPerSecond + 1` starts span at least
`1 + margin` seconds: a receiver whose clock sees the requests up to `margin` closer than they were
started (the network, either end's event loop) still counts no more than `maxPerSecond` in any second.

`maxConcurrent` is shared by the same partitions, rounded down, but never below one attempt per
worker that owns any (a worker with deliveries must be able to make them).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

# How late after its slot an attempt may still start in it.
ON_TIME_SECONDS = 0.05
# The jitter between a worker's start and the receiver's clock the slots leave room for, by default
# (OUTBOUND_RATE_MARGIN_SECONDS): 5/s become one start every 0.24 s.
MARGIN_SECONDS = 0.15


@dataclass(frozen=True)
class Share:
    """The partitions of `deliveries` this worker owns, out of how many the topic has."""

    owned: frozenset[int]
    partitions: int

    @property
    def fraction(self) -> float:
        return len(self.owned) / self.partitions if self.partitions else 0.0


def interval(max_per_second: float, margin: float = MARGIN_SECONDS) -> float:
    """Seconds between two slots of the whole deployment."""
    return (1.0 + margin + ON_TIME_SECONDS) / max_per_second


def slot_time(index: int, max_per_second: float, margin: float = MARGIN_SECONDS) -> float:
    """When slot `index` begins, in seconds since the epoch."""
    return index * interval(max_per_second, margin)


def offset(integration_id: str) -> int:
    """A fixed offset per integration, so that integrations' slots do not all fall on one partition's
    worker at the same instants."""
    return int.from_bytes(hashlib.sha256(integration_id.encode()).digest()[:4], "big")


def owner(index: int, integration_id: str, partitions: int) -> int:
    """The partition slot `index` of the integration belongs to."""
    return (index + offset(integration_id)) % partitions


def next_slot(
    integration_id: str, max_per_second: float, share: Share, *, after: int, now: float, margin: float = MARGIN_SECONDS
) -> int | None:
    """The first slot of this worker not before slot `after` and not already begun at `now`; None when
    the worker owns no partition (it has no share of the rate)."""
    if not share.owned or share.partitions <= 0:
        return None
    first = max(after, math.ceil(now / interval(max_per_second, margin) - 1e-9))
    for index in range(first, first + share.partitions):
        if owner(index, integration_id, share.partitions) in share.owned:
            return index
    return None  # unreachable: one of `partitions` consecutive slots belongs to every partition


def slots_within(
    integration_id: str,
    max_per_second: float,
    share: Share,
    *,
    after: int,
    now: float,
    horizon: float,
    margin: float = MARGIN_SECONDS,
) -> int:
    """How many slots of this worker, not before `after`, begin between `now` and `now + horizon`."""
    count, index = 0, next_slot(integration_id, max_per_second, share, after=after, now=now, margin=margin)
    while index is not None and slot_time(index, max_per_second, margin) <= now + horizon:
        count += 1
        index = next_slot(integration_id, max_per_second, share, after=index + 1, now=now, margin=margin)
    return count


def on_time(index: int, max_per_second: float, now: float, margin: float = MARGIN_SECONDS) -> bool:
    """Whether an attempt may start at `now` in slot `index` (begun, and not missed)."""
    begins = slot_time(index, max_per_second, margin)
    return begins - 1e-3 <= now <= begins + ON_TIME_SECONDS


def concurrency(max_concurrent: int | None, share: Share, per_worker: int) -> int:
    """How many attempts of the integration this worker runs at once: the worker's own limit, and the
    worker's share of `maxConcurrent` (rounded down, at least one)."""
    if max_concurrent is None:
        return per_worker
    return min(per_worker, max(1, math.floor(max_concurrent * share.fraction + 1e-9)))

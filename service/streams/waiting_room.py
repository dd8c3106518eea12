"""Where retries wait for their due time: rows of a RocksDB table, ordered by when they are due.

A retry read from deliveries-retry that is not due yet becomes a row of the `waiting-retries` table,
in its own partition, and its message is acknowledged at once: waiting holds no slot of the retry
agent and no commit of its partition, and costs disk, not memory. The row's key starts with the due
time, so RocksDB keeps each partition's rows in the order they fall due and a sweep reads only the
rows that are due, then stops. Due rows are started fairly: at most a few per integration at a time,
so one tenant's flood of due retries never queues ahead of another tenant's one.

These are the pure decisions; `streams/retry.py` is the agent and the sweep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from service import metrics
from service.contracts import DeliveryCommand

DUE_DIGITS = 13  # milliseconds since the epoch, zero-padded so that text order is time order


@dataclass(frozen=True)
class Waiting:
    """One waiting row, as its key tells it (the command itself is the row's value)."""

    key: str
    due_ms: int
    tier: str
    integration_id: str


def waiting_key(command: DeliveryCommand) -> str:
    """Due time first (ordering), then what the sweep decides on without reading the value, then what
    makes the row one attempt of one delivery (read again after a crash, it lands on the same row)."""
    assert command.dueAt is not None
    due_ms = int(command.dueAt.timestamp() * 1000)
    tier = metrics.retry_tier(command.attempt, command.seriesStart)
    return f"{due_ms:0{DUE_DIGITS}d}|{tier}|{command.integrationId}|{command.deliveryId}|{command.attempt}"


def parse_key(key: str) -> Waiting:
    due, tier, integration_id, _ = key.split("|", 3)
    return Waiting(key, int(due), tier, integration_id)


def stored_key(raw: bytes) -> str | None:
    """The row key inside a RocksDB key of the table (JSON-encoded); None for Faust's own keys."""
    if not raw.startswith(b'"') or not raw.endswith(b'"'):
        return None
    return raw[1:-1].decode()


def due_rows(raw_keys: Iterable[bytes], now_ms: int) -> Iterator[Waiting]:
    """The rows due by `now_ms`, in due order, reading no further than the first row not yet due."""
    for raw in raw_keys:
        key = stored_key(raw)
        if key is None:
            continue
        row = parse_key(key)
        if row.due_ms > now_ms:
            return
        yield row


def rows_to_start(
    due: Iterable[Waiting], running: set[str], per_integration: Counter[str], *, per_integration_limit: int, room: int
) -> list[Waiting]:
    """Which due rows to start now: not already running, at most `per_integration_limit` running per
    integration (a flood of one integration's due rows waits its turn without holding anyone else's)
    and at most `room` in all. The earliest due first. Counts in `per_integration` are updated."""
    chosen: list[Waiting] = []
    for row in due:
        if len(chosen) >= room:
            break
        if row.key in running or per_integration[row.integration_id] >= per_integration_limit:
            continue
        per_integration[row.integration_id] += 1
        chosen.append(row)
    return chosen


def waiting_by_tier(raw_keys: Iterable[bytes]) -> Counter[str]:
    """The rows in a partition, counted by retry tier (the waiting-retries gauge)."""
    counts: Counter[str] = Counter()
    for raw in raw_keys:
        key = stored_key(raw)
        if key is not None:
            counts[parse_key(key).tier] += 1
    return counts

"""Where retries wait for their due time: rows of a RocksDB table, ordered by integration, then by
when they are due.

A retry read from deliveries-retry that is not due yet becomes a row of the `waiting-retries` table,
in its own partition, and its message is acknowledged with the barrier's next round: waiting holds
no slot of the retry agent and no commit of its partition, and costs disk, not memory. A row's key is its integration,
then its due time, so RocksDB keeps each integration's rows of a partition together and in the order
they fall due: a sweep seeks to each integration's first row and reads only as many of its due rows
as the integration has room for. One tenant's flood of due retries therefore costs the sweep a few
rows per second, never a scan past them, and never queues ahead of another tenant's due retry.

These are the pure decisions; `streams/stages/retry.py` is the agent and the sweep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from service import metrics
from service.contracts import DeliveryCommand

PACED_TIER = "paced"
DUE_DIGITS = 13  # milliseconds since the epoch, zero-padded so that text order is time order


@dataclass(frozen=True)
class Waiting:
    """One waiting row, as its key tells it (the command itself is the row's value)."""

    key: str
    integration_id: str
    due_ms: int
    tier: str


def waiting_key(command: DeliveryCommand) -> str:
    """Integration, then due time (the order a sweep reads in), the tier (the gauge counts rows without
    reading them), then what makes the row one attempt of one delivery (read again after a crash, it
    lands on the same row). Integration ids never contain "|" (`common.schema.json`)."""
    assert command.dueAt is not None
    due_ms = int(command.dueAt.timestamp() * 1000)
    # A delivery waiting for its integration's rate is not a retry: the gauge counts it apart.
    tier = PACED_TIER if command.paced else metrics.retry_tier(command.attempt, command.seriesStart)
    return f"{command.integrationId}|{due_ms:0{DUE_DIGITS}d}|{tier}|{command.deliveryId}|{command.attempt}"


def parse_key(key: str) -> Waiting:
    integration_id, due, tier, _ = key.split("|", 3)
    return Waiting(key, integration_id, int(due), tier)


def stored_key(raw: bytes) -> str | None:
    """The row key inside a RocksDB key of the table (JSON-encoded); None for Faust's own keys."""
    if not raw.startswith(b'"') or not raw.endswith(b'"'):
        return None
    return raw[1:-1].decode()


def integration_start(integration_id: str) -> bytes:
    """Where an integration's rows begin in RocksDB's order (seek here)."""
    return b'"' + f"{integration_id}|".encode()


def due_rows(raw_keys: Iterable[bytes], integration_id: str, now_ms: int) -> Iterator[Waiting]:
    """An integration's rows due by `now_ms`, earliest first, from keys read from its start; reads no
    further than its first row not yet due (or the first row of another integration)."""
    for raw in raw_keys:
        key = stored_key(raw)
        if key is None:
            return
        row = parse_key(key)
        if row.integration_id != integration_id or row.due_ms > now_ms:
            return
        yield row


def rows_to_start(due: Iterable[Waiting], running: set[str], room: int) -> list[Waiting]:
    """Of one integration's due rows, the earliest `room` that are not already running."""
    chosen: list[Waiting] = []
    for row in due:
        if len(chosen) >= room:
            break
        if row.key not in running:
            chosen.append(row)
    return chosen


@dataclass
class Census:
    """What a partition's rows are: how many per retry tier, and which integrations have any."""

    tiers: Counter[str]
    integrations: set[str]


def census(raw_keys: Iterable[bytes]) -> Census:
    found = Census(Counter(), set())
    for raw in raw_keys:
        key = stored_key(raw)
        if key is not None:
            row = parse_key(key)
            found.tiers[row.tier] += 1
            found.integrations.add(row.integration_id)
    return found

"""Where retries wait: row keys in due order, the sweep's reading and its fair choice of what to start."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.contracts import DeliveryCommand
from service.streams.waiting_room import Waiting, due_rows, parse_key, rows_to_start, waiting_by_tier, waiting_key

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def command(due: datetime, integration: str = "int-a", delivery: str = "d1", attempt: int = 2) -> DeliveryCommand:
    return DeliveryCommand(
        deliveryId=delivery,
        integrationId=integration,
        integrationType="zapier",
        tenant="acme",
        eventType="order.created",
        eventId="e1",
        recipeId="r1",
        orderId="o1",
        files=[],
        attempt=attempt,
        dueAt=due,
        createdAt=T0,
    )


def stored(keys: list[str]) -> list[bytes]:
    """As RocksDB holds them: JSON-encoded, in byte order, with Faust's offset key among them."""
    return sorted([json.dumps(k).encode() for k in keys] + [b"__faust\x00offset__"])


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_a_key_tells_when_which_integration_and_which_attempt():
    # Integration ids are `^[a-z0-9][a-z0-9._-]{0,99}$` (common.schema.json): never a "|".
    key = waiting_key(command(T0 + timedelta(seconds=30), "int-b.x", "d9", attempt=3))
    assert parse_key(key) == Waiting(key, ms(T0) + 30_000, "2", "int-b.x")
    assert key.endswith("|d9|3")
    # The same attempt read again after a crash is the same row; the next attempt is another.
    assert waiting_key(command(T0, delivery="d9", attempt=3)) != waiting_key(command(T0, delivery="d9", attempt=4))


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=40))
def test_rows_are_kept_in_due_order_and_the_sweep_reads_no_further_than_the_first_not_due(offsets):
    keys = [waiting_key(command(T0 + timedelta(milliseconds=o), delivery=f"d{i}")) for i, o in enumerate(offsets)]
    now = ms(T0) + sorted(offsets)[len(offsets) // 2]
    read: list[bytes] = []

    def reading():
        for raw in stored(keys):
            read.append(raw)
            yield raw

    due = list(due_rows(reading(), now))
    assert [r.due_ms for r in due] == sorted(ms(T0) + o for o in offsets if ms(T0) + o <= now)
    assert len(read) <= len(due) + 1, "read past the first row not yet due"


def test_one_integration_s_flood_leaves_room_for_another_s_due_retry():
    flood = [waiting_key(command(T0, "int-a", f"a{i}")) for i in range(500)]
    other = waiting_key(command(T0 + timedelta(seconds=1), "int-b", "b1"))
    due = due_rows(stored([*flood, other]), ms(T0) + 5_000)
    per_integration: Counter[str] = Counter()
    chosen = rows_to_start(due, set(), per_integration, per_integration_limit=4, room=100)
    assert [r.integration_id for r in chosen] == ["int-a"] * 4 + ["int-b"]
    assert per_integration == {"int-a": 4, "int-b": 1}


def test_rows_running_or_over_the_room_are_not_started_again():
    keys = [waiting_key(command(T0, f"int-{i}", f"d{i}")) for i in range(5)]
    rows = list(due_rows(stored(keys), ms(T0)))
    chosen = rows_to_start(rows, {rows[0].key}, Counter(), per_integration_limit=4, room=2)
    assert chosen == rows[1:3]


def test_the_gauge_counts_rows_by_tier_and_skips_faust_s_own_keys():
    keys = [waiting_key(command(T0, delivery=f"d{i}", attempt=2)) for i in range(3)]
    keys.append(waiting_key(command(T0, delivery="e", attempt=3)))
    assert waiting_by_tier(stored(keys)) == {"1": 3, "2": 1}

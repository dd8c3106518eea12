"""Where retries wait: row keys ordered by integration then due time, the sweep's reading and choices."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.contracts import DeliveryCommand
from service.streams.state.waiting_room import (
    Waiting,
    census,
    due_rows,
    integration_start,
    parse_key,
    rows_to_start,
    waiting_key,
)

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


def from_key(keys: list[bytes], start: bytes):
    """RocksDB's iteration from a key: the first key at or after it, then on in order."""
    return (k for k in keys if k >= start)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_a_key_tells_which_integration_when_and_which_attempt():
    # Integration ids are `^[a-z0-9][a-z0-9._-]{0,99}$` (common.schema.json): never a "|".
    key = waiting_key(command(T0 + timedelta(seconds=30), "int-b.x", "d9", attempt=3))
    assert parse_key(key) == Waiting(key, "int-b.x", ms(T0) + 30_000, "2")
    assert key.endswith("|d9|3")
    # The same attempt read again after a crash is the same row; the next attempt is another.
    assert waiting_key(command(T0, delivery="d9", attempt=3)) != waiting_key(command(T0, delivery="d9", attempt=4))


def test_a_delivery_waiting_for_its_rate_is_counted_apart_from_the_retries():
    paced = command(T0, attempt=1).model_copy(update={"paced": True})
    assert parse_key(waiting_key(paced)).tier == "paced"
    assert parse_key(waiting_key(command(T0, attempt=2))).tier == "1"


@given(st.lists(st.tuples(st.sampled_from(["a", "a.b", "b", "c-1"]), st.integers(0, 10**7)), min_size=1, max_size=40))
def test_an_integration_s_due_rows_come_in_due_order_and_the_read_stops_at_its_first_not_due(rows):
    keys = stored([waiting_key(command(T0 + timedelta(milliseconds=o), i, f"d{n}")) for n, (i, o) in enumerate(rows)])
    now = ms(T0) + sorted(o for _, o in rows)[len(rows) // 2]
    for integration in {i for i, _ in rows}:
        read: list[bytes] = []

        def reading(integration=integration, read=read):
            for raw in from_key(keys, integration_start(integration)):
                read.append(raw)
                yield raw

        due = list(due_rows(reading(), integration, now))
        wanted = sorted(ms(T0) + o for i, o in rows if i == integration and ms(T0) + o <= now)
        assert [r.due_ms for r in due] == wanted and {r.integration_id for r in due} <= {integration}
        assert len(read) <= len(due) + 1, "read past the integration's first row not yet due"


def test_a_flood_of_one_integration_is_never_read_past_to_reach_another():
    flood = [waiting_key(command(T0, "int-a", f"a{i}")) for i in range(10_000)]
    keys = stored([*flood, waiting_key(command(T0 + timedelta(seconds=1), "int-b", "b1"))])
    [row] = due_rows(from_key(keys, integration_start("int-b")), "int-b", ms(T0) + 5_000)
    assert row.integration_id == "int-b"


def test_running_rows_are_skipped_and_no_more_than_the_room_is_started():
    keys = stored([waiting_key(command(T0 + timedelta(seconds=s), "int-a", f"d{s}")) for s in range(6)])
    rows = list(due_rows(from_key(keys, integration_start("int-a")), "int-a", ms(T0) + 10_000))
    assert rows_to_start(rows, {rows[0].key, rows[2].key}, 2) == [rows[1], rows[3]]


def test_the_census_counts_rows_by_tier_and_names_the_integrations_skipping_faust_s_keys():
    keys = [waiting_key(command(T0, "int-a", f"d{i}", attempt=2)) for i in range(3)]
    keys.append(waiting_key(command(T0, "int-b", "e", attempt=3)))
    found = census(stored(keys))
    assert found.tiers == {"1": 3, "2": 1} and found.integrations == {"int-a", "int-b"}

"""The tenant rows' write-behind: a message is acknowledged only once the row it changed is written."""

from __future__ import annotations

import asyncio

from faust.streams import current_event

from service.streams.status import tenant_activity_topic, tenant_table
from service.streams.write_behind import WriteBehindRows, handling
from tests.support import FakeEvent as Event
from tests.support import FakeMessage as Message
from tests.support import fake_events as events
from tests.support import wait_for


class CountingTable(dict[str, list[int]]):
    """Records, like Faust's table, the event each write is made for; can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.failures_left = 0
        self.written_as: dict[str, Event | None] = {}

    def __setitem__(self, key: str, value: list[int]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("disk full")
        self.writes += 1
        self.written_as[key] = current_event()  # type: ignore[assignment]
        super().__setitem__(key, value)


class Group:
    """The consumer group as the rows see it: its generation and whether it rebalances."""

    def __init__(self) -> None:
        self.generation = 1
        self.rebalancing = False

    def rows(self, table: CountingTable, *, cached: int = 8, batch: int = 100) -> WriteBehindRows[list[int]]:
        return WriteBehindRows(
            table,
            cached=cached,
            batch=batch,
            rebalancing=lambda: self.rebalancing,
            is_current=lambda e: e.message.generation_id == self.generation,
        )


def fold(rows: WriteBehindRows[list[int]], key: str, event: Event) -> bool:
    rows.put(key, [*(rows.get(key) or []), event.message.offset], event)
    return rows.handled(event)


def test_a_batch_writes_each_row_once_and_acks_only_after_writing():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = Group().rows(table)
    for event in events("p0", range(10), acked):
        fold(rows, "tenant-a" if event.message.offset % 2 else "tenant-b", event)
    assert table == {} and acked == [], "nothing written or acknowledged before the flush"
    assert rows.flush()
    assert table == {"tenant-a": [1, 3, 5, 7, 9], "tenant-b": [0, 2, 4, 6, 8]} and table.writes == 2
    assert acked == [("p0", o) for o in range(10)]
    assert [table.written_as[k].message.offset for k in ("tenant-a", "tenant-b")] == [9, 8], (
        "each row is written as the last event that changed it (its partition is Faust's choice)"
    )


def test_faust_takes_the_partition_to_write_from_the_event_the_flush_sets():
    """Faust's own table, not a stand-in: the partition comes from the event being handled, and a
    write outside one is refused (the first version of the flush was)."""
    event = Event(Message("p3", 1, topic=tenant_activity_topic.get_topic_name(), partition=3))
    assert current_event() is None
    with handling(event):
        assert current_event() is event
        assert tenant_table.partition_for_key(b"tenant") == 3
    assert current_event() is None
    try:
        tenant_table.partition_for_key(b"tenant")
    except TypeError as exc:
        assert "outside of stream iteration" in str(exc)
    else:
        raise AssertionError("Faust no longer needs the event being handled to write a table")


def test_a_full_batch_asks_to_be_written():
    rows = Group().rows(CountingTable(), batch=3)
    assert [fold(rows, "t", e) for e in events("p0", range(3), [])] == [False, False, True]


def test_nothing_is_written_while_the_group_rebalances():
    acked: list[tuple[str, int]] = []
    table, group = CountingTable(), Group()
    rows = group.rows(table)
    fold(rows, "t", Event(Message("p0", 0), acked))
    group.rebalancing = True
    assert not rows.flush() and table == {} and acked == []
    group.rebalancing = False
    assert rows.flush() and table == {"t": [0]} and acked == [("p0", 0)]


def test_a_revoked_partition_s_changes_are_dropped_unacknowledged_the_others_wait():
    acked: list[tuple[str, int]] = []
    table, group = CountingTable(), Group()
    rows = group.rows(table)
    for event in events("p0", range(3), acked):
        fold(rows, "kept", event)
    for event in events("p1", range(3), acked):
        fold(rows, "moved", event)
    group.rebalancing = True
    rows.forget({"p1"})
    table["moved"] = [7]  # written meanwhile by the partition's next owner
    assert rows.get("moved") == [7], "nothing cached of a revoked partition survives"
    group.rebalancing = False
    assert rows.flush()
    assert table == {"kept": [0, 1, 2], "moved": [7]}
    assert acked == [("p0", 0), ("p0", 1), ("p0", 2)], "the next owner reads p1's messages again"


def test_an_event_fetched_before_a_rebalance_is_neither_folded_nor_acknowledged():
    acked: list[tuple[str, int]] = []
    table, group = CountingTable(), Group()
    rows = group.rows(table)
    old = Event(Message("p0", 4, generation_id=1), acked)
    group.generation = 2
    fold(rows, "t", old)
    assert rows.flush() and table == {} and acked == []


def test_rows_read_before_an_assignment_are_read_again_but_unwritten_ones_stay():
    table = CountingTable()
    table["read"] = [1]
    rows = Group().rows(table)
    assert rows.get("read") == [1]
    fold(rows, "changed", Event(Message("p0", 5)))
    table["read"] = [2]
    rows.drop_cached()
    assert rows.get("read") == [2] and rows.get("changed") == [5]


def test_the_cache_is_bounded_but_never_forgets_a_row_waiting_to_be_written():
    table = CountingTable()
    rows = Group().rows(table, cached=2)
    for i, event in enumerate(events("p0", range(5), [])):
        fold(rows, f"t{i}", event)
    assert set(rows._rows) == {"t0", "t1", "t2", "t3", "t4"}, "all five wait to be written"
    rows.flush()
    assert table == {f"t{i}": [i] for i in range(5)}
    assert list(rows._rows) == ["t3", "t4"]


async def test_a_failed_write_is_tried_again_and_acknowledges_nothing_until_it_succeeds():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = Group().rows(table)
    fold(rows, "t", Event(Message("p0", 0), acked))
    table.failures_left = 2
    await asyncio.wait_for(rows.write(), 10)
    assert table == {"t": [0]} and acked == [("p0", 0)]


async def test_waiting_changes_are_written_shortly_after_the_first_arrives():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = Group().rows(table)
    writer = asyncio.create_task(rows.write_after(0.05))
    try:
        fold(rows, "t", Event(Message("p0", 0), acked))
        await wait_for(lambda: acked == [("p0", 0)], 5, "the timed write")
        assert table == {"t": [0]}
        fold(rows, "t", Event(Message("p0", 1), acked))
        await wait_for(lambda: len(acked) == 2, 5, "the next timed write")
        assert table == {"t": [0, 1]}
    finally:
        writer.cancel()

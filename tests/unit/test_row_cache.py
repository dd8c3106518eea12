"""Rows changed in memory and written once per barrier (service/streams/machinery/row_cache.py)."""

from __future__ import annotations

from faust.streams import current_event

from service.streams.machinery.row_cache import RowCache, handling
from service.streams.stages.order_view import tenant_activity_topic, tenant_table
from tests.fakes import FakeEvent as Event
from tests.fakes import FakeMessage as Message
from tests.fakes import fake_events as events


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
    """The consumer group as the rows see it: its generation."""

    def __init__(self) -> None:
        self.generation = 1

    def rows(self, table: CountingTable, *, cached: int = 8) -> RowCache[list[int]]:
        return RowCache(table, cached=cached, is_current=lambda e: e.message.generation_id == self.generation)


def fold(rows: RowCache[list[int]], key: str, event: Event) -> None:
    rows.put(key, [*(rows.get(key) or []), event.message.offset], event)


def test_each_changed_row_is_written_once_as_the_last_event_that_changed_it():
    table = CountingTable()
    rows = Group().rows(table)
    for event in events("p0", range(10), []):
        fold(rows, "tenant-a" if event.message.offset % 2 else "tenant-b", event)
    assert table == {}, "nothing written before the barrier"
    assert rows.get("tenant-a") == [1, 3, 5, 7, 9], "reads see the changes at once"
    assert rows.write() == 2
    assert table == {"tenant-a": [1, 3, 5, 7, 9], "tenant-b": [0, 2, 4, 6, 8]} and table.writes == 2
    assert [table.written_as[k].message.offset for k in ("tenant-a", "tenant-b")] == [9, 8], (
        "each row is written as the last event that changed it (its partition is Faust's choice)"
    )
    assert rows.write() == 0, "a written row is not written again"


def test_faust_takes_the_partition_to_write_from_the_event_the_write_sets():
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


def test_a_revoked_partition_s_changes_are_dropped():
    table = CountingTable()
    rows = Group().rows(table)
    for event in events("p0", range(3), []):
        fold(rows, "kept", event)
    for event in events("p1", range(3), []):
        fold(rows, "moved", event)
    rows.forget({"p1"})
    table["moved"] = [7]  # written meanwhile by the partition's next owner
    assert rows.get("moved") == [7], "nothing cached of a revoked partition survives"
    rows.write()
    assert table == {"kept": [0, 1, 2], "moved": [7]}


def test_an_event_fetched_before_a_rebalance_changes_nothing():
    table, group = CountingTable(), Group()
    rows = group.rows(table)
    old = Event(Message("p0", 4, generation_id=1))
    group.generation = 2
    fold(rows, "t", old)
    assert rows.write() == 0 and table == {}


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
    rows.write()
    assert table == {f"t{i}": [i] for i in range(5)}
    assert list(rows._rows) == ["t3", "t4"]


def test_a_failed_write_leaves_the_rows_not_yet_written_changed():
    table = CountingTable()
    rows = Group().rows(table)
    fold(rows, "a", Event(Message("p0", 0)))
    fold(rows, "b", Event(Message("p0", 1)))
    table.failures_left = 1
    try:
        rows.write()
    except OSError:
        pass
    else:
        raise AssertionError("the write should have failed")
    assert rows.changed_row("a") == [0] and rows.changed_row("b") == [1]
    assert rows.write() == 2 and table == {"a": [0], "b": [1]}

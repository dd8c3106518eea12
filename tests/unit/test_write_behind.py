"""The tenant rows' write-behind: a message is acknowledged only once the row it changed is written."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.streams import current_event

from service.streams.write_behind import WriteBehindRows, handling
from tests.support import wait_for


@dataclass
class Message:
    tp: str
    offset: int


@dataclass
class Event:
    message: Message
    acked: list[tuple[str, int]] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append((self.message.tp, self.message.offset))


def events(acked: list[tuple[str, int]], tp: str, offsets: range) -> list[Event]:
    return [Event(Message(tp, o), acked) for o in offsets]


class CountingTable(dict[str, list[int]]):
    """Records, like Faust's table, the event each write is made for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written_as: dict[str, Event | None] = {}

    def __setitem__(self, key: str, value: list[int]) -> None:
        self.writes += 1
        self.written_as[key] = current_event()  # type: ignore[assignment]
        super().__setitem__(key, value)


def fold(rows: WriteBehindRows[list[int]], key: str, event: Event) -> bool:
    rows.put(key, [*(rows.get(key) or []), event.message.offset], event)
    return rows.handled(event)


def test_a_batch_writes_each_row_once_and_acks_only_after_writing():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = WriteBehindRows(table, cached=8, batch=100)
    for event in events(acked, "p0", range(10)):
        fold(rows, "tenant-a" if event.message.offset % 2 else "tenant-b", event)
    assert table == {} and acked == [], "nothing written or acknowledged before the flush"
    assert rows.flush() == 2
    assert table == {"tenant-a": [1, 3, 5, 7, 9], "tenant-b": [0, 2, 4, 6, 8]} and table.writes == 2
    assert acked == [("p0", o) for o in range(10)]
    assert [table.written_as[k].message.offset for k in ("tenant-a", "tenant-b")] == [9, 8], (
        "each row is written as the last event that changed it (its partition is Faust's choice)"
    )


def test_faust_takes_the_event_being_handled_from_the_context_the_flush_sets():
    event = Event(Message("p3", 1))
    assert current_event() is None
    with handling(event):
        assert current_event() is event
    assert current_event() is None


def test_a_full_batch_asks_to_be_flushed():
    rows = WriteBehindRows(CountingTable(), cached=8, batch=3)
    assert [fold(rows, "t", e) for e in events([], "p0", range(3))] == [False, False, True]


def test_a_revoked_partition_s_changes_are_dropped_unacknowledged_the_others_written():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = WriteBehindRows(table, cached=8, batch=100)
    for event in events(acked, "p0", range(3)):
        fold(rows, "kept", event)
    for event in events(acked, "p1", range(3)):
        fold(rows, "moved", event)
    rows.forget({"p1"})
    assert table == {"kept": [0, 1, 2]}
    assert acked == [("p0", 0), ("p0", 1), ("p0", 2)], "the next owner reads p1's messages again"
    table["moved"] = [7]  # written meanwhile by the partition's next owner
    assert rows.get("moved") == [7], "nothing cached survives a revocation"


def test_rows_read_before_an_assignment_are_read_again_but_unwritten_ones_stay():
    table = CountingTable()
    table["read"] = [1]
    rows = WriteBehindRows(table, cached=8, batch=100)
    assert rows.get("read") == [1]
    fold(rows, "changed", Event(Message("p0", 5)))
    table["read"] = [2]
    rows.drop_cached()
    assert rows.get("read") == [2] and rows.get("changed") == [5]


def test_the_cache_is_bounded_after_a_flush():
    rows = WriteBehindRows(CountingTable(), cached=2, batch=100)
    for i, event in enumerate(events([], "p0", range(5))):
        fold(rows, f"t{i}", event)
    rows.flush()
    assert list(rows._rows) == ["t3", "t4"]


async def test_waiting_changes_are_written_shortly_after_the_first_arrives():
    acked: list[tuple[str, int]] = []
    table = CountingTable()
    rows = WriteBehindRows(table, cached=8, batch=100)
    flusher = asyncio.create_task(rows.flush_after(0.05))
    try:
        fold(rows, "t", Event(Message("p0", 0), acked))
        await wait_for(lambda: acked == [("p0", 0)], 5, "the timed flush")
        assert table == {"t": [0]}
        fold(rows, "t", Event(Message("p0", 1), acked))
        await wait_for(lambda: len(acked) == 2, 5, "the next timed flush")
        assert table == {"t": [0, 1]}
    finally:
        flusher.cancel()

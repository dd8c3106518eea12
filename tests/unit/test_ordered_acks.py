"""Acknowledgements leave a partition in offset order, whatever order the work finishes in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.streams.machinery.ordered_acks import InOrderAcks
from tests.fakes import FakeEvent as Event
from tests.fakes import FakeMessage as Message
from tests.fakes import fake_events as events


def test_a_finished_message_waits_for_the_slow_one_before_it():
    acked: list[tuple[str, int]] = []
    acks = InOrderAcks()
    slow, *fast = [acks.add(e) for e in events("p0", range(31, 38), acked)]
    for entry in fast:
        acks.finished(entry)
    assert acked == []  # 32-37 done, 31 still running: a commit must not pass 31
    acks.finished(slow)
    assert acked == [("p0", o) for o in range(31, 38)]


def test_partitions_do_not_wait_for_each_other():
    acked: list[tuple[str, int]] = []
    acks = InOrderAcks()
    a = acks.add(Event(Message("p0", 5), acked))
    b = acks.add(Event(Message("p1", 9), acked))
    acks.finished(b)
    assert acked == [("p1", 9)]
    acks.finished(a)
    assert acked == [("p1", 9), ("p0", 5)]


def test_abandoned_work_is_never_acknowledged_nor_anything_after_it():
    acked: list[tuple[str, int]] = []
    acks = InOrderAcks()
    first, cancelled, later = [acks.add(e) for e in events("p0", range(3), acked)]
    acks.finished(first)
    acks.abandoned(cancelled)
    acks.finished(later)
    assert acked == [("p0", 0)]
    assert acks.waiting() == 2


def test_revoked_partitions_are_forgotten_unacknowledged():
    acked: list[tuple[str, int]] = []
    acks = InOrderAcks()
    entry = acks.add(Event(Message("p0", 1), acked))
    acks.forget({"p0"})
    acks.finished(entry)
    assert acked == [] and acks.waiting() == 0


@given(st.permutations(list(range(20))))
def test_acks_are_always_a_gap_free_prefix(order):
    acked: list[tuple[str, int]] = []
    acks = InOrderAcks()
    entries = [acks.add(e) for e in events("p0", range(20), acked)]
    done: set[int] = set()
    for i in order:
        acks.finished(entries[i])
        done.add(i)
        offsets = [o for _, o in acked]
        assert offsets == list(range(len(offsets)))  # in order, no gap
        assert all(o in done for o in offsets)  # only finished work
    assert len(acked) == 20

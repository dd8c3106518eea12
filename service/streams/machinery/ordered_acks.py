"""Acknowledging a partition's messages in offset order, whatever order their work finishes in.

Faust does not protect against acks out of order: `Consumer._new_offset` (faust-streaming 0.15.3,
faust/transport/consumer.py) only checks the head gap as `min(acked) - committed > 1`, and skips the
check while nothing is committed, so with offset 31 still in flight and 32-37 acked it commits 38.
A crash after that commit would lose the delivery at 31. Here a finished message is acknowledged
only once every earlier message of its partition has finished; a message whose work was abandoned
(cancelled at shutdown) is never acknowledged, so nothing after it is either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Ackable(Protocol):
    """What this needs of a faust Event: its message's partition and offset, and `ack()`."""

    message: Any

    def ack(self) -> Any: ...


@dataclass(eq=False)
class Entry:
    event: Ackable
    done: bool = False
    abandoned: bool = False


def _ack(event: Ackable) -> None:
    event.ack()


@dataclass
class InOrderAcks:
    """Per-partition queues of messages in flight, acknowledged from the head (by `ack`: the worker
    hands them to its barrier, which acknowledges them once what they caused is settled)."""

    ack: Callable[[Any], None] = _ack
    _queues: dict[Any, deque[Entry]] = field(default_factory=dict)

    def add(self, event: Ackable) -> Entry:
        entry = Entry(event)
        self._queues.setdefault(event.message.tp, deque()).append(entry)
        return entry

    def finished(self, entry: Entry) -> int:
        """Mark `entry` done and ack the partition's finished head; returns how many were acked."""
        entry.done = True
        return self._release(entry.event.message.tp)

    def abandoned(self, entry: Entry) -> None:
        """The work was cancelled: this message must be read again, so its partition stops acking here."""
        entry.abandoned = True

    def forget(self, tps: set[Any]) -> None:
        """Partitions revoked: their messages go to the next owner, unacknowledged."""
        for tp in tps:
            self._queues.pop(tp, None)

    def waiting(self) -> int:
        """Messages held: in flight, or finished behind one that is."""
        return sum(len(q) for q in self._queues.values())

    def _release(self, tp: Any) -> int:
        queue = self._queues.get(tp)
        acked = 0
        while queue and queue[0].done and not queue[0].abandoned:
            self.ack(queue.popleft().event)
            acked += 1
        if queue is not None and not queue:
            del self._queues[tp]
        return acked

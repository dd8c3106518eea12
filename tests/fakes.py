"""Stand-ins for Faust's consumed messages and events, for unit tests of acknowledgements (no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FakeMessage:
    """A consumed message as the acknowledging code sees it (unit tests of acks, no broker)."""

    tp: str
    offset: int
    generation_id: int = 1
    topic: str = "tenant-activity"
    partition: int = 0


@dataclass
class FakeEvent:
    """A Faust event whose acknowledgements are recorded in `acked`, in the order they happen."""

    message: FakeMessage
    acked: list[tuple[str, int]] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append((self.message.tp, self.message.offset))


def fake_events(tp: str, offsets: range, acked: list[tuple[str, int]]) -> list[FakeEvent]:
    return [FakeEvent(FakeMessage(tp, o), acked) for o in offsets]

"""The deliveries this worker parked on the retry path to wait for their integration's rate, by their
(order, integration) line: a later command of the same line is parked behind them instead of
overtaking them, so one order's deliveries to one integration still go out in event order.

Held in memory: a line's entries go when their attempts have run (the sweep runs them on this worker,
the partitions being co-partitioned) or when their partition is revoked (the next owner runs them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.contracts import DeliveryCommand

# A follower is due just after the one it follows: the waiting room runs an integration's rows in due
# order, to the millisecond (two, so that rounding never gives both the same one).
FOLLOW_SECONDS = 0.002


def line_of(command: DeliveryCommand) -> tuple[str, str] | None:
    """The line the deliver agent keeps in order (`deliver.order_and_integration`); None: no line."""
    return (command.orderId, command.integrationId) if command.orderId else None


@dataclass
class Parked:
    # line -> (deliveryId, attempt) -> (due, partition)
    _lines: dict[tuple[str, str], dict[tuple[str, int], tuple[float, int]]] = field(default_factory=dict)

    def due_after(self, command: DeliveryCommand) -> float | None:
        """When a command of this line must be due at the earliest to stay behind the parked ones;
        None when none of its line is parked."""
        line = line_of(command)
        entries = self._lines.get(line) if line else None
        return max(due for due, _ in entries.values()) + FOLLOW_SECONDS if entries else None

    def add(self, command: DeliveryCommand, due: float, partition: int) -> None:
        line = line_of(command)
        if line is not None:
            self._lines.setdefault(line, {})[(command.deliveryId, command.attempt)] = (due, partition)

    def done(self, command: DeliveryCommand) -> None:
        """Its attempt has run (whatever the outcome): the line moves on."""
        line = line_of(command)
        if line is None or line not in self._lines:
            return
        entries = self._lines[line]
        entries.pop((command.deliveryId, command.attempt), None)
        if not entries:
            del self._lines[line]

    def revoked(self, partitions: set[int]) -> None:
        for line in list(self._lines):
            entries = {k: v for k, v in self._lines[line].items() if v[1] not in partitions}
            if entries:
                self._lines[line] = entries
            else:
                del self._lines[line]

    def lines(self) -> int:
        return len(self._lines)


parked = Parked()

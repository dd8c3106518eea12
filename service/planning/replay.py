"""Replays and re-drives, decided: which messages a window and its filters take, and what is sent again.

A replay re-publishes input events unchanged (same key, same bytes) with headers saying so; the
event keeps its eventId, so its deliveries keep their ids, names and webhook-ids: replaying a window
twice overwrites, it never makes a second copy. A re-drive sends a failed delivery's command back to
the retry path as a new series of attempts, under the same delivery id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from service.contracts import DeliveryCommand

REPLAY_HEADER = "outbound-replay"
REPLAY_INTEGRATION_HEADER = "outbound-replay-integration"
REPLAYABLE = ("recipes", "orders")
EVENT_TYPES = {"recipes": ("recipe.created",), "orders": ("order.created", "order.updated", "order.cancelled")}

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class BadRequest(ValueError):
    """A window or filter that cannot be used, said so that an operator can fix it."""


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a span ago: `90m`, `6h`, `3d`."""
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{text!r} is neither an ISO 8601 time nor a span ago like 90m, 6h or 3d") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Half-open: [since, until) in message time, or [from_offset, to_offset) in every chosen partition."""

    since: datetime | None = None
    until: datetime | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    partition: int | None = None

    def check(self) -> Window:
        by_time = self.since is not None or self.until is not None
        by_offset = self.from_offset is not None or self.to_offset is not None
        if by_time and by_offset:
            raise BadRequest("give a window by time (since/until) or by offset (from/to), not both")
        if not by_time and not by_offset:
            raise BadRequest("give a window: since (and until) or from-offset (and to-offset)")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise BadRequest("until must be later than since")
        if self.from_offset is not None and self.from_offset < 0:
            raise BadRequest("from-offset must be 0 or more")
        if self.from_offset is not None and self.to_offset is not None and self.to_offset <= self.from_offset:
            raise BadRequest("to-offset must be greater than from-offset")
        return self


@dataclass(frozen=True)
class ReplayFilter:
    topic: str
    tenant: str | None = None
    recipe_id: str | None = None
    order_id: str | None = None
    event_type: str | None = None

    def check(self) -> ReplayFilter:
        if self.topic not in REPLAYABLE:
            raise BadRequest(f"only {' and '.join(REPLAYABLE)} can be replayed, not {self.topic!r}")
        if self.event_type is not None and self.event_type not in EVENT_TYPES[self.topic]:
            raise BadRequest(f"{self.topic} carries {', '.join(EVENT_TYPES[self.topic])}, not {self.event_type!r}")
        if self.order_id is not None and self.topic != "orders":
            raise BadRequest("an order id filters orders only")
        return self


def header(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """A header's text, from a Kafka record's or a Faust message's headers (a mapping or pairs)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def replay_marks(
    headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None,
) -> list[tuple[str, bytes]] | None:
    """The replay headers of an input message, to go with it onto the internal topic it is re-published
    to (None when it is no replay)."""
    replay = header(headers, REPLAY_HEADER)
    return replay_headers(replay, header(headers, REPLAY_INTEGRATION_HEADER)) if replay else None


def replay_headers(replay_id: str, integration_id: str | None) -> list[tuple[str, bytes]]:
    headers = [(REPLAY_HEADER, replay_id.encode())]
    if integration_id:
        headers.append((REPLAY_INTEGRATION_HEADER, integration_id.encode()))
    return headers


def replay_matches(
    f: ReplayFilter, value: bytes | None, headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None
) -> bool:
    """Whether a message of the window is replayed: an event that passes the filters. Earlier replays
    are left out (they are copies of events in the log already) and so is what does not parse (it went
    to invalid-events the first time)."""
    if header(headers, REPLAY_HEADER) is not None or value is None:
        return False
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(doc, dict):
        return False
    if f.tenant is not None and doc.get("tenant") != f.tenant:
        return False
    if f.event_type is not None and doc.get("type") != f.event_type:
        return False
    if f.order_id is not None and doc.get("orderId") != f.order_id:
        return False
    if f.recipe_id is not None:
        if f.topic == "recipes":
            return bool(doc.get("recipeId") == f.recipe_id)
        items = doc.get("lineItems")
        return isinstance(items, list) and any(isinstance(i, dict) and i.get("recipeId") == f.recipe_id for i in items)
    return True


@dataclass(frozen=True)
class RedriveFilter:
    tenant: str | None = None
    integration_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    error_contains: str | None = None


def redrive_matches(f: RedriveFilter, doc: Any, failed_at: datetime) -> bool:
    """Whether one deliveries-failed record (`{"command", "reason"}`, failed at its message time) is taken."""
    if not isinstance(doc, dict) or not isinstance(doc.get("command"), dict):
        return False
    command = doc["command"]
    if f.tenant is not None and command.get("tenant") != f.tenant:
        return False
    if f.integration_id is not None and command.get("integrationId") != f.integration_id:
        return False
    if f.since is not None and failed_at < f.since:
        return False
    if f.until is not None and failed_at >= f.until:
        return False
    if f.error_contains is not None:
        needle = f.error_contains.lower()
        texts = [str(doc.get("reason") or "")] + [str(e.get("error") or "") for e in command.get("errors") or []]
        if not any(needle in text.lower() for text in texts):
            return False
    return True


@dataclass(frozen=True)
class Failed:
    command: DeliveryCommand
    failed_at: datetime


def still_failed(failures: Iterable[Failed], delivered_at: Mapping[str, datetime]) -> list[Failed]:
    """One per delivery id (its latest failure), without those delivered since (a trigger, an earlier
    re-drive): a re-drive run twice does not deliver twice."""
    latest: dict[str, Failed] = {}
    for failure in failures:
        known = latest.get(failure.command.deliveryId)
        if known is None or failure.failed_at >= known.failed_at:
            latest[failure.command.deliveryId] = failure
    return [
        f
        for f in latest.values()
        if f.command.deliveryId not in delivered_at or delivered_at[f.command.deliveryId] < f.failed_at
    ]


def redriven(command: DeliveryCommand, redrive_id: str, now: datetime) -> DeliveryCommand:
    """The failed command as the first attempt of a new series, due now, on the retry path. The
    delivery id stays (same names, same webhook-id: the destination overwrites)."""
    return new_series(command, command.attempt + 1, now, redrive=redrive_id)


def new_series(
    command: DeliveryCommand,
    attempt: int,
    now: datetime,
    *,
    redrive: str | None = None,
    reconcile: str | None = None,
) -> DeliveryCommand:
    """The command as attempt `attempt`, the first of a new series of retries, due now, marked as the
    re-drive or the reconciliation that sent it again."""
    return command.model_copy(
        update={
            "attempt": attempt,
            "seriesStart": attempt,
            "dueAt": None,
            "errors": [],
            "redrive": redrive,
            "reconcile": reconcile,
            "createdAt": now,
        }
    )

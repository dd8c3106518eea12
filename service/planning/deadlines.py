"""Late deliveries: when an order event's files must have reached an integration, and whether they did
(pure).

An integration with `deliverWithinMinutes` promises its order events' files within that many minutes
of the event's `occurredAt`. Each such (order event, integration) gets one deadline when the orders
stage accepts the event (the orders stage, not the delivery stage: an order waiting for its recipe
has no delivery command yet, and is late all the same). A deadline is a timer: a row of the
`delivery-deadlines` table in the order's partition, keyed by its due time first, so that a sweep
reads only the rows that are due and stops at the first that is not. When a row falls due its order's
view says what became of each of the event's deliveries to that integration; the row is removed
either way, and a late one is told once (`late_alert`), its mark kept in the order's view so that a
row read again (an order event handled again after a crash) never tells it twice.

Integrations without the setting cost nothing here: no row, no record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from service.contracts import Integration, OrderEvent
from service.planning.commands import delivery_id
from service.planning.order_view import WAITING_FOR_RECIPE, deliveries_of, late_key

DUE_DIGITS = 13  # milliseconds since the epoch, zero-padded so that text order is time order
SETTLED = ("superseded", "skipped")  # a delivery that will never be made is not late


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (no float in between)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def deadline_key(due: datetime, event_id: str, integration_id: str) -> str:
    """Due time first (the order a sweep reads in), then what makes it one (event, integration): an order
    event handled again after a crash writes the same row. Ids never contain "|" (`common.schema.json`)."""
    return f"{due_ms(due):0{DUE_DIGITS}d}|{event_id}|{integration_id}"


def deadlines_for(order: OrderEvent, integrations: Iterable[Integration]) -> list[tuple[str, dict[str, Any]]]:
    """The deadline rows of an order event, one per integration it goes to that promises a time (the
    integrations as `routing.route` chose them)."""
    recipes = sorted({line.recipeId for line in order.lineItems})
    rows = []
    for integration in integrations:
        minutes = integration.deliverWithinMinutes
        if minutes is None or not integration.enabled:
            continue
        due = order.occurredAt + timedelta(minutes=minutes)
        rows.append(
            (
                deadline_key(due, order.eventId, integration.id),
                {
                    "orderId": order.orderId,
                    "orderNumber": order.orderNumber,
                    "tenant": order.tenant,
                    "eventId": order.eventId,
                    "eventType": order.type,
                    "occurredAt": order.occurredAt.isoformat(),
                    "integrationId": integration.id,
                    "integrationType": integration.type,
                    "recipeIds": recipes,
                    "withinMinutes": minutes,
                    "dueAt": due.isoformat(),
                },
            )
        )
    return rows


def stored_key(raw: bytes) -> str | None:
    """The row key inside a RocksDB key of the table (JSON-encoded); None for Faust's own keys."""
    if not raw.startswith(b'"') or not raw.endswith(b'"'):
        return None
    return raw[1:-1].decode()


TABLE_START = b'"'  # where the table's rows begin in RocksDB's order (Faust's own keys sort after them)


def due_keys(raw_keys: Iterable[bytes], now_ms: int) -> Iterator[str]:
    """The keys of the rows due by `now_ms`, earliest first, from keys read from the table's start; reads
    no further than the first row not yet due."""
    for raw in raw_keys:
        key = stored_key(raw)
        if key is None or not key[:DUE_DIGITS].isdigit() or int(key[:DUE_DIGITS]) > now_ms:
            return
        yield key


@dataclass(frozen=True)
class LateDelivery:
    """One recipe's delivery of a late (order event, integration), as it stood when the deadline passed."""

    recipeId: str
    deliveryId: str
    state: str  # waiting for recipe, queued (not started), retrying, failed, delivered late
    attempts: int
    lastError: str | None


@dataclass(frozen=True)
class LateAlert:
    row: dict[str, Any]
    integration: Integration
    deliveries: list[LateDelivery]
    checkedAt: datetime


def late_alert(
    row: dict[str, Any], doc: dict[str, Any] | None, integration: Integration | None, now: datetime
) -> LateAlert | None:
    """What to tell about a deadline that has passed, from the order's view `doc`; None when nothing is
    late: every delivery arrived by the deadline (or was superseded or skipped), the order was cancelled
    after the event, the integration is gone, off or no longer promises a time, or it was told already.
    (An integration the service turned off told its failure list so once: its kept deliveries are late
    by design, and an e-mail for each would be the flood turning it off ended.)"""
    if integration is None or not integration.enabled or integration.deliverWithinMinutes is None:
        return None
    doc = doc or {}
    if late_key(row["eventId"], row["integrationId"]) in (doc.get("late") or {}):
        return None
    order = doc.get("order") or {}
    cancelled = order.get("cancelledAt")
    after = cancelled and datetime.fromisoformat(cancelled) >= datetime.fromisoformat(row["occurredAt"])
    if after and row["eventType"] != "order.cancelled":
        return None  # its deliveries are superseded, made or not
    due = datetime.fromisoformat(row["dueAt"])
    deliveries = deliveries_of(doc)
    late = []
    for recipe_id in row["recipeIds"]:
        found = delivery_id(row["eventId"], recipe_id, row["integrationId"])
        state = _state_at(deliveries.get(found), due)
        if state is not None:
            late.append(_late_delivery(recipe_id, found, state, deliveries.get(found)))
    return LateAlert(row, integration, late, now) if late else None


def _state_at(entry: dict[str, Any] | None, due: datetime) -> str | None:
    """None when the delivery arrived in time or never will be made; else how it stands."""
    if entry is None:
        # The join makes the command as soon as the order line meets its recipe.
        return WAITING_FOR_RECIPE
    attempts = entry.get("attempts") or []
    if not attempts:
        return "queued"
    for attempt in attempts:
        if attempt["outcome"] == "delivered" and attempt.get("finishedAt"):
            return None if datetime.fromisoformat(attempt["finishedAt"]) <= due else "delivered late"
    last = attempts[-1]
    if last["outcome"] in SETTLED:
        return None
    if last["outcome"] == "failed":
        return "failed" if last.get("final", True) else "retrying"
    return str(last["outcome"])


def _late_delivery(recipe_id: str, found: str, state: str, entry: dict[str, Any] | None) -> LateDelivery:
    attempts = (entry or {}).get("attempts") or []
    errors = [a["error"] for a in attempts if a.get("error")]
    return LateDelivery(recipe_id, found, state, len(attempts), errors[-1] if errors else None)


def late_mark(alert: LateAlert) -> dict[str, Any]:
    """What the order's view keeps of a late (event, integration): the page and the API show it."""
    row = alert.row
    return {
        "eventId": row["eventId"],
        "eventType": row["eventType"],
        "integrationId": row["integrationId"],
        "integrationType": row["integrationType"],
        "withinMinutes": row["withinMinutes"],
        "dueAt": row["dueAt"],
        "alertedAt": alert.checkedAt.isoformat(),
        "deliveries": [
            {
                "recipeId": d.recipeId,
                "deliveryId": d.deliveryId,
                "state": d.state,
                "attempts": d.attempts,
                "lastError": d.lastError,
            }
            for d in alert.deliveries
        ],
    }

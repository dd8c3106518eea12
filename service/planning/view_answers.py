"""The operator API's answers, shaped from the operators' view (order_view documents and tenant
rows): an order's or recipe's deliveries, a trigger as planned, a tenant's recent list (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.planning.order_view import (
    WAITING_FOR_RECIPE,
    deliveries_of,
    delivery_state,
    late_marks,
    latest_by_pair,
    own_deliveries,
    planned_order,
    summary_word,
    undelivered_lines,
    worst,
)
from service.planning.status import describe
from service.planning.view_keys import Kind


def recent_page(
    recent: dict[str, Any] | None, *, failed_only: bool, page: int, size: int, bucket: str = "orders"
) -> dict[str, Any]:
    entries = [e for e in (recent or {}).get(bucket) or [] if not failed_only or e["summary"] == "failed"]
    start = (page - 1) * size
    return {"page": page, "pageSize": size, "total": len(entries), "items": entries[start : start + size]}


def failures_since(recent: dict[str, Any] | None, since: datetime) -> list[dict[str, Any]]:
    """Orders and raw-feed recipes whose deliveries failed, with activity since `since`, newest first."""
    found = [
        e
        for bucket in ("orders", "recipes")
        for e in (recent or {}).get(bucket) or []
        if e["summary"] == "failed" and e.get("updatedAt") and datetime.fromisoformat(e["updatedAt"]) >= since
    ]
    return sorted(found, key=lambda e: str(e["updatedAt"]), reverse=True)


def _attempt_view(attempt: dict[str, Any]) -> dict[str, Any]:
    return {k: attempt.get(k) for k in ("attempt", "startedAt", "finishedAt", "outcome", "error", "bytes")}


def delivery_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "deliveryId": entry["deliveryId"],
        "integrationId": entry["integrationId"],
        "integrationType": entry.get("integrationType"),
        "recipeId": entry["recipeId"],
        "eventType": entry.get("eventType"),
        "eventId": entry.get("eventId"),
        "manual": bool(entry.get("manual")),
        "createdAt": entry.get("createdAt"),
        "state": delivery_state(entry),
        "attempts": [_attempt_view(a) for a in entry.get("attempts") or []],
        "files": entry.get("files") or [],
    }


def view_tenant(doc: dict[str, Any] | None, kind: Kind, key: str) -> str | None:
    """The tenant an order's (or raw-feed recipe's) view belongs to; None when it knows of none."""
    doc = doc or {}
    if kind == "order":
        return (doc.get("order") or {}).get("tenant")
    return next((e.get("tenant") for e in own_deliveries(doc, kind, key)), None) or next(
        (o.get("tenant") for o in doc.get("orders") or []), None
    )


def answer(doc: dict[str, Any] | None, kind: Kind, key: str, waiting_for_recipe: set[str]) -> dict[str, Any] | None:
    """The API's answer for an order (or raw-feed recipe): its lines and each integration's deliveries,
    newest first. `waiting_for_recipe`: recipes of the order's lines whose link waits in the join.
    None when the service knows nothing of it."""
    doc = doc or {}
    order = doc.get("order") if kind == "order" else None
    own = own_deliveries(doc, kind, key)
    if kind == "order" and order is None:
        return None
    if kind == "recipe" and not own and not doc.get("orders"):
        return None
    latest = latest_by_pair(own)
    integrations: dict[str, dict[str, Any]] = {}
    for entry in sorted(own, key=planned_order, reverse=True):
        slot = integrations.setdefault(
            entry["integrationId"],
            {
                "integrationId": entry["integrationId"],
                "integrationType": entry.get("integrationType"),
                "deliveries": [],
            },
        )
        slot["deliveries"].append(delivery_view(entry))
    for slot in integrations.values():
        slot["state"] = worst(delivery_state(e) for (_, i), e in latest.items() if i == slot["integrationId"])
    waiting = sorted(waiting_for_recipe & set(undelivered_lines(doc, key))) if order else []
    states = [delivery_state(e) for e in latest.values()] + [WAITING_FOR_RECIPE] * len(waiting)
    body: dict[str, Any] = {
        "kind": kind,
        "summary": summary_word(states, False),
        "integrations": [integrations[i] for i in sorted(integrations)],
        "triggers": sorted((doc.get("triggers") or {}).values(), key=lambda t: str(t.get("requestedAt")), reverse=True),
    }
    if order is not None:
        body.update(
            tenant=order["tenant"],
            orderId=order["orderId"],
            orderNumber=order["orderNumber"],
            lastEventType=order.get("lastEventType"),
            placedAt=order.get("placedAt"),
            updatedAt=order.get("occurredAt"),
            cancelledAt=order.get("cancelledAt"),
            # Each (order event, integration) not delivered within its integration's deliverWithinMinutes.
            late=late_marks(doc),
            lines=[
                {
                    **{k: line.get(k) for k in ("itemId", "recipeId", "itemQuantity", "sku")},
                    "state": WAITING_FOR_RECIPE if line["recipeId"] in waiting else None,
                }
                for line in order.get("lineItems") or []
            ],
        )
    else:
        body.update(
            recipeId=key,
            tenant=view_tenant(doc, kind, key),
            orders=[{"orderId": o["orderId"], "orderNumber": o["orderNumber"]} for o in doc.get("orders") or []],
            triggers=[t for t in body["triggers"] if t.get("recipeId") == key and not t.get("orderId")],
        )
    if order is not None:
        body["triggers"] = [t for t in body["triggers"] if t.get("orderId") == key]
    return body


def trigger_answer(doc: dict[str, Any] | None, trigger_id: str) -> dict[str, Any] | None:
    """A trigger as planned by the stream, each of its deliveries with its state so far."""
    plan = ((doc or {}).get("triggers") or {}).get(trigger_id)
    if plan is None:
        return None
    deliveries = deliveries_of(doc or {})
    return {
        **plan,
        "planned": True,
        "deliveries": [
            {**d, "state": delivery_state(deliveries[d["deliveryId"]]) if d["deliveryId"] in deliveries else "queued"}
            for d in plan.get("deliveries") or []
        ],
    }


def legacy_status(doc: dict[str, Any] | None, kind: Kind, key: str) -> list[dict[str, Any]]:
    """The older /v1/status answer: each (recipe, integration)'s latest delivery in one line."""
    out = []
    for (_, integration_id), entry in sorted(latest_by_pair(own_deliveries(doc or {}, kind, key)).items()):
        attempts = entry.get("attempts") or []
        last = attempts[-1] if attempts else {}
        errors = [a["error"] for a in attempts if a["outcome"] == "failed" and a.get("error")]
        out.append(
            {
                "integrationId": integration_id,
                "integrationType": entry.get("integrationType"),
                "recipeId": entry["recipeId"],
                "orderId": entry.get("orderId"),
                "orderNumber": entry.get("orderNumber"),
                "eventType": entry.get("eventType"),
                "deliveryId": entry["deliveryId"],
                "outcome": last.get("outcome"),
                "final": last.get("final"),
                "status": describe(last["outcome"], last["attempt"], last["final"]) if last else "queued",
                "state": delivery_state(entry),
                "attempts": last.get("attempt", 0),
                "lastError": errors[-1] if errors else None,
                "updatedAt": last.get("finishedAt"),
            }
        )
    return sorted(out, key=lambda e: e["integrationId"])

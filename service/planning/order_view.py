"""What operators see of an order or a raw-feed recipe, and what a manual trigger would send: pure.

One document per delivery key (the orderId, or the recipeId for the raw feed: the key of
delivery-results), so that it lives in the partition whose owner the API routes to:

    {"order": the order's summary (no personal data), when the key is an orderId,
     "deliveries": {deliveryId: entry}, "triggers": {triggerId: plan},
     "orders": [{"orderId", "orderNumber"}] when the key is a recipeId: the orders that have it}

Folds accept their inputs in any order (a result can be read before its command: they come from
two topics) and keep every list bounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from service.contracts import Integration, OrderLink
from service.planning.commands import delivery_id
from service.planning.routing import route
from service.planning.status import describe

MAX_DELIVERIES = 300
MAX_TRIGGERS = 50
MAX_RECIPE_ORDERS = 100
RECENT_LIMIT = 1000
# Raw-feed recipes share the tenant's row, which must stay well under Kafka's 1 MB message limit.
RECENT_RECIPES_LIMIT = 250

Summary = Literal["delivered", "retrying", "failed", "waiting", "none"]
Mode = Literal["failed-only", "all"]
MODES: tuple[str, ...] = ("failed-only", "all")

# Worst first: an integration's (or an order's) state at a glance is its worst delivery's.
STATE_RANK = ("failed", "retrying", "queued", "waiting for recipe", "delivered", "superseded", "skipped")
WAITING_FOR_RECIPE = "waiting for recipe"


def _deliveries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(doc.get("deliveries") or {})


def _order_key(entry: dict[str, Any]) -> str:
    """Deliveries in the order they were planned (a result read before its command uses its start)."""
    attempts = entry.get("attempts") or []
    return str(entry.get("createdAt") or (attempts[0]["startedAt"] if attempts else ""))


def _bounded(deliveries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if len(deliveries) <= MAX_DELIVERIES:
        return deliveries
    keep = sorted(deliveries.values(), key=_order_key)[-MAX_DELIVERIES:]
    return {e["deliveryId"]: e for e in keep}


_IDENTITY = (
    "deliveryId",
    "integrationId",
    "integrationType",
    "tenant",
    "eventType",
    "recipeId",
    "orderId",
    "orderNumber",
)


def fold_command(doc: dict[str, Any] | None, command: dict[str, Any]) -> dict[str, Any]:
    """A delivery command (topic deliveries): the delivery exists, with its files and its cause."""
    doc = dict(doc or {})
    deliveries = _deliveries(doc)
    entry = dict(deliveries.get(command["deliveryId"]) or {"attempts": []})
    measured = {f["name"]: f for f in entry.get("files") or []}
    entry.update({k: command.get(k) for k in _IDENTITY})
    entry.update(
        eventId=command.get("eventId"),
        manual=bool(command.get("manual")),
        createdAt=command.get("createdAt"),
        files=[
            {
                "name": f["name"],
                "kind": f.get("kind"),
                "mimeType": f.get("mimeType"),
                **_measured(None, measured.get(f["name"], {})),
            }
            for f in command.get("files") or []
        ],
    )
    deliveries[command["deliveryId"]] = entry
    doc["deliveries"] = _bounded(deliveries)
    return doc


def fold_result(doc: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
    """One attempt's outcome (topic delivery-results)."""
    doc = dict(doc or {})
    deliveries = _deliveries(doc)
    entry = dict(deliveries.get(result["deliveryId"]) or {"files": [], "manual": False, "createdAt": None})
    for k in _IDENTITY:
        entry.setdefault(k, result.get(k))
    attempt = {
        "attempt": int(result["attempt"]),
        "startedAt": result.get("startedAt"),
        "finishedAt": result.get("finishedAt"),
        "outcome": result["outcome"],
        "final": bool(result.get("final", True)),
        "error": result.get("error"),
        "bytes": int(result.get("bytes") or 0),
    }
    others = [a for a in entry.get("attempts") or [] if a["attempt"] != attempt["attempt"]]
    entry["attempts"] = sorted([*others, attempt], key=lambda a: a["attempt"])
    # A delivered attempt's result names each file's size and SHA-256 (the manifest too); the command
    # only names the files.
    sized = {f["name"]: f for f in result.get("files") or [] if isinstance(f, dict) and "name" in f}
    if sized:
        known = {f["name"] for f in entry.get("files") or []}
        entry["files"] = [{**f, **_measured(sized.get(f["name"]), f)} for f in entry.get("files") or []] + [
            {"name": n, "kind": None, "mimeType": None, **_measured(f, {})} for n, f in sized.items() if n not in known
        ]
    deliveries[result["deliveryId"]] = entry
    doc["deliveries"] = _bounded(deliveries)
    return doc


def _measured(delivered: dict[str, Any] | None, known: dict[str, Any]) -> dict[str, Any]:
    if delivered is None:
        return {"bytes": known.get("bytes"), "sha256": known.get("sha256")}
    return {"bytes": delivered.get("bytes"), "sha256": delivered.get("sha256")}


def fold_order(doc: dict[str, Any] | None, summary: dict[str, Any]) -> dict[str, Any]:
    """An order event's summary (service.planning.links.order_summary): the latest wins, but the time
    the order was first seen and its cancellation stay."""
    doc = dict(doc or {})
    previous = doc.get("order") or {}
    doc["order"] = {
        **summary,
        "placedAt": previous.get("placedAt") or summary.get("occurredAt"),
        "cancelledAt": previous.get("cancelledAt") or summary.get("cancelledAt"),
    }
    return doc


def fold_recipe_order(doc: dict[str, Any] | None, ref: dict[str, Any]) -> dict[str, Any]:
    """An order that has this recipe on a line (the document's key is the recipeId)."""
    doc = dict(doc or {})
    orders = [o for o in doc.get("orders") or [] if o["orderId"] != ref["orderId"]]
    doc["orders"] = [*orders, {k: ref[k] for k in ("orderId", "orderNumber", "tenant")}][-MAX_RECIPE_ORDERS:]
    return doc


def fold_trigger(doc: dict[str, Any] | None, plan: dict[str, Any]) -> dict[str, Any]:
    """A manual trigger as the stream planned it: which deliveries it caused."""
    doc = dict(doc or {})
    triggers = dict(doc.get("triggers") or {})
    triggers[plan["triggerId"]] = plan
    doc["triggers"] = dict(sorted(triggers.items(), key=lambda kv: str(kv[1].get("requestedAt")))[-MAX_TRIGGERS:])
    return doc


def delivery_state(entry: dict[str, Any]) -> str:
    attempts = entry.get("attempts") or []
    if not attempts:
        return "queued"
    last = attempts[-1]
    if last["outcome"] == "failed":
        return "failed" if last["final"] else "retrying"
    return str(last["outcome"])


def _worst(states: Iterable[str]) -> str | None:
    ranked = sorted(states, key=STATE_RANK.index)
    return ranked[0] if ranked else None


def own_deliveries(doc: dict[str, Any], kind: Literal["order", "recipe"], key: str) -> list[dict[str, Any]]:
    """The deliveries of the order `key`, or of the raw feed of recipe `key` (an orderId and a recipeId
    may share a document's key)."""
    entries = _deliveries(doc).values()
    if kind == "order":
        return [e for e in entries if e.get("orderId") == key]
    return [e for e in entries if not e.get("orderId") and e.get("recipeId") == key]


def latest_by_pair(deliveries: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(recipeId, integrationId) -> its latest delivery."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in sorted(deliveries, key=_order_key):
        latest[(entry["recipeId"], entry["integrationId"])] = entry
    return latest


def undelivered_lines(doc: dict[str, Any], order_id: str) -> list[str]:
    """Recipes of the order's lines that no delivery has been planned for yet."""
    planned = {e["recipeId"] for e in own_deliveries(doc, "order", order_id)}
    lines = (doc.get("order") or {}).get("lineItems") or []
    return sorted({line["recipeId"] for line in lines} - planned)


def summary_word(states: Iterable[str], waiting: bool) -> Summary:
    """An order's (or raw-feed recipe's) state in one word, from its latest deliveries' states."""
    found = set(states)
    if "failed" in found:
        return "failed"
    if "retrying" in found:
        return "retrying"
    if waiting or "queued" in found or WAITING_FOR_RECIPE in found:
        return "waiting"
    if "delivered" in found:
        return "delivered"
    return "none"


def tenant_entry(
    doc: dict[str, Any], kind: Literal["order", "recipe"], key: str, expects_deliveries: bool
) -> dict[str, Any] | None:
    """The line of an order (or raw-feed recipe) in its tenant's recent list; None if nothing to list.

    `expects_deliveries`: some integration of the tenant takes the order's events, so a line without
    deliveries is waiting (for its recipe, or for the join) rather than going nowhere.
    """
    latest = latest_by_pair(own_deliveries(doc, kind, key))
    order = doc.get("order") if kind == "order" else None
    if not latest and order is None:
        return None
    per_integration: dict[str, list[str]] = {}
    for (_, integration_id), entry in latest.items():
        per_integration.setdefault(integration_id, []).append(delivery_state(entry))
    waiting = kind == "order" and expects_deliveries and bool(undelivered_lines(doc, key))
    times = [t for e in latest.values() for t in [_order_key(e)] if t]
    finished = [a["finishedAt"] for e in latest.values() for a in e.get("attempts") or [] if a.get("finishedAt")]
    any_entry = next(iter(latest.values()), {})
    return {
        "kind": kind,
        "id": key,
        "tenant": (order or any_entry).get("tenant"),
        "orderNumber": (order or {}).get("orderNumber"),
        "occurredAt": (order or {}).get("placedAt") or (min(times) if times else None),
        "updatedAt": max([*finished, *times, (order or {}).get("occurredAt") or ""]) or None,
        "summary": summary_word([delivery_state(e) for e in latest.values()], waiting),
        "integrations": {i: _worst(states) for i, states in sorted(per_integration.items())},
    }


def remember(recent: dict[str, Any] | None, entry: dict[str, Any], limit: int = RECENT_LIMIT) -> dict[str, Any]:
    """A tenant's recent orders (at most `limit`) and raw-feed recipes, newest first."""
    recent = dict(recent or {})
    bucket = "orders" if entry["kind"] == "order" else "recipes"
    kept = [e for e in recent.get(bucket) or [] if e["id"] != entry["id"]]
    kept.append(entry)
    kept.sort(key=lambda e: (str(e.get("occurredAt") or ""), e["id"]), reverse=True)
    recent[bucket] = kept[: limit if bucket == "orders" else min(limit, RECENT_RECIPES_LIMIT)]
    return recent


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


# ------------------------------------------------------------------------------------ manual triggers


def failed_pairs(doc: dict[str, Any] | None, kind: Literal["order", "recipe"], key: str) -> set[tuple[str, str]]:
    """(recipeId, integrationId) whose latest delivery failed for good."""
    latest = latest_by_pair(own_deliveries(doc or {}, kind, key))
    return {pair for pair, entry in latest.items() if delivery_state(entry) == "failed"}


def select_links(
    links: list[OrderLink], mode: str, doc: dict[str, Any] | None, kind: Literal["order", "recipe"], key: str
) -> list[OrderLink]:
    """A trigger's links for its mode: `all` as they are; `failed-only` one link per failed
    (recipe, integration), so that nothing delivered is sent again."""
    if mode == "all":
        return links
    failed = sorted(failed_pairs(doc, kind, key))
    return [
        link.model_copy(update={"integrationId": integration_id})
        for link in links
        for recipe_id, integration_id in failed
        if recipe_id == link.recipeId and link.integrationId in (None, integration_id)
    ]


def planned_deliveries(
    trigger_id: str, links: list[OrderLink], integrations: list[Integration], doc: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """What a trigger's links send where: one line per (recipe, integration), with the delivery id the
    join will give it and the files the earlier deliveries of that recipe had."""
    names: dict[str, list[str]] = {}
    for entry in sorted(_deliveries(doc or {}).values(), key=_order_key):
        if entry.get("files"):
            # The recipe's files (a result also lists the manifest, which has no kind).
            names[entry["recipeId"]] = [f["name"] for f in entry["files"] if f.get("kind")]
    return [
        {
            "deliveryId": delivery_id(trigger_id, link.recipeId, integration.id),
            "recipeId": link.recipeId,
            "integrationId": integration.id,
            "integrationType": integration.type,
            "description": integration.description,
            "eventType": link.eventType,
            "files": names.get(link.recipeId, []),
        }
        for link in links
        for integration in route(link.eventType, link.tenant, integrations, only=link.integrationId)
    ]


# ------------------------------------------------------------------------------------ answers


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


def answer(
    doc: dict[str, Any] | None, kind: Literal["order", "recipe"], key: str, waiting_for_recipe: set[str]
) -> dict[str, Any] | None:
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
    for entry in sorted(own, key=_order_key, reverse=True):
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
        slot["state"] = _worst(delivery_state(e) for (_, i), e in latest.items() if i == slot["integrationId"])
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
            tenant=next((e.get("tenant") for e in own), None)
            or next((o.get("tenant") for o in doc.get("orders") or []), None),
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
    deliveries = _deliveries(doc or {})
    return {
        **plan,
        "planned": True,
        "deliveries": [
            {**d, "state": delivery_state(deliveries[d["deliveryId"]]) if d["deliveryId"] in deliveries else "queued"}
            for d in plan.get("deliveries") or []
        ],
    }


def legacy_status(doc: dict[str, Any] | None, kind: Literal["order", "recipe"], key: str) -> list[dict[str, Any]]:
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

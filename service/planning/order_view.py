"""What operators see of an order or a raw-feed recipe: the document, its folds, its readings (pure).

One document per view key (`view_keys.view_key`: the orderId, or the recipeId for the raw feed, the
key of delivery-results), so that it lives in the partition whose owner the API routes to:

    {"order": the order's summary (no personal data), when the key is an orderId,
     "deliveries": {deliveryId: entry}, "triggers": {triggerId: plan},
     "orders": [{"orderId", "orderNumber"}] when the key is a recipeId: the orders that have it}

Folds accept their inputs in any order (a result can be read before its command: they come from
two topics) and keep every list bounded. What a manual trigger sends is chosen in
`trigger_selection`, the API's answers are shaped in `view_answers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from service.planning.view_keys import Kind, kind_of

MAX_DELIVERIES = 300
MAX_TRIGGERS = 50
MAX_RECIPE_ORDERS = 100
MAX_LATE_MARKS = 50  # an order has a handful of events, each late at most once per integration
RECENT_LIMIT = 1000
# Raw-feed recipes share the tenant's row, which must stay well under Kafka's 1 MB message limit.
RECENT_RECIPES_LIMIT = 250

Summary = Literal["delivered", "retrying", "failed", "waiting", "none"]

# Worst first: an integration's (or an order's) state at a glance is its worst delivery's.
STATE_RANK = ("failed", "retrying", "queued", "waiting for recipe", "delivered", "superseded", "skipped")
WAITING_FOR_RECIPE = "waiting for recipe"


def deliveries_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(doc.get("deliveries") or {})


def planned_order(entry: dict[str, Any]) -> str:
    """Deliveries in the order they were planned (a result read before its command uses its start)."""
    attempts = entry.get("attempts") or []
    return str(entry.get("createdAt") or (attempts[0]["startedAt"] if attempts else ""))


def _bounded(deliveries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if len(deliveries) <= MAX_DELIVERIES:
        return deliveries
    keep = sorted(deliveries.values(), key=planned_order)[-MAX_DELIVERIES:]
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
    deliveries = deliveries_of(doc)
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
    deliveries = deliveries_of(doc)
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


def late_key(event_id: str, integration_id: str) -> str:
    return f"{event_id}|{integration_id}"


def fold_late(doc: dict[str, Any] | None, mark: dict[str, Any]) -> dict[str, Any]:
    """An (order event, integration) whose files were not there in time (`planning.deadlines`), its
    latest `MAX_LATE_MARKS`."""
    doc = dict(doc or {})
    marks = dict(doc.get("late") or {})
    marks[late_key(mark["eventId"], mark["integrationId"])] = mark
    doc["late"] = dict(sorted(marks.items(), key=lambda kv: str(kv[1].get("dueAt")))[-MAX_LATE_MARKS:])
    return doc


def late_marks(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An order's late marks, the latest deadline first (the API's `late`)."""
    return sorted(((doc or {}).get("late") or {}).values(), key=lambda m: str(m.get("dueAt")), reverse=True)


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


def worst(states: Iterable[str]) -> str | None:
    ranked = sorted(states, key=STATE_RANK.index)
    return ranked[0] if ranked else None


def own_deliveries(doc: dict[str, Any], kind: Kind, key: str) -> list[dict[str, Any]]:
    """The deliveries of the order `key`, or of the raw feed of recipe `key` (an orderId and a recipeId
    may share a document's key)."""
    entries = deliveries_of(doc).values()
    if kind == "order":
        return [e for e in entries if e.get("orderId") == key]
    return [e for e in entries if not e.get("orderId") and e.get("recipeId") == key]


def latest_by_pair(deliveries: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(recipeId, integrationId) -> its latest delivery."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in sorted(deliveries, key=planned_order):
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


def tenant_entry(doc: dict[str, Any], kind: Kind, key: str, expects_deliveries: bool) -> dict[str, Any] | None:
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
    times = [t for e in latest.values() for t in [planned_order(e)] if t]
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
        "integrations": {i: worst(states) for i, states in sorted(per_integration.items())},
        # Only on late orders: the lines of the others stay as they were listed.
        **({"late": True} if doc.get("late") and kind == "order" else {}),
    }


def remember(recent: dict[str, Any] | None, *entries: dict[str, Any], limit: int = RECENT_LIMIT) -> dict[str, Any]:
    """A tenant's recent orders (at most `limit`) and raw-feed recipes, newest first, with `entries`
    (the latest line of an order or recipe replaces its earlier one)."""
    recent = dict(recent or {})
    for bucket, kind in (("orders", "order"), ("recipes", "recipe")):
        new = {e["id"]: e for e in entries if (e["kind"] == "order") == (kind == "order")}
        if not new:
            continue
        kept = [e for e in recent.get(bucket) or [] if e["id"] not in new]
        kept.extend(new.values())
        # The stored list is sorted already: the sort merges it with the new lines in one pass.
        kept.sort(key=_recent_order, reverse=True)
        recent[bucket] = kept[: limit if bucket == "orders" else min(limit, RECENT_RECIPES_LIMIT)]
    return recent


def tenant_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of a `tenant-activity` record: a round's lines of one tenant, or the one line that
    releases before the grouped records sent (still read during an upgrade and from the topic)."""
    lines = record.get("entries")
    return list(lines) if isinstance(lines, list) else [record]


def _recent_order(entry: dict[str, Any]) -> tuple[str, str]:
    return (str(entry.get("occurredAt") or ""), entry["id"])


def activity_fold(record: dict[str, Any]) -> tuple[Callable[[dict[str, Any] | None], dict[str, Any]], Kind | None]:
    """What an `order-activity` record changes in its row, and the row's kind for its tenant's list
    (None: not listed). Releases before the view was folded in place sent every order event
    ("order"), each order of a recipe ("recipe-order") and every trigger plan this way: those records
    are still folded, as today's expired links and sweep-started attempts ("result") are."""
    activity = record.get("activity")
    if activity == "order":
        order = record["order"]
        return (lambda doc: fold_order(doc, order)), "order"
    if activity == "recipe-order":
        ref = record["order"]
        return (lambda doc: fold_recipe_order(doc, ref)), None
    if activity == "trigger":
        plan = record["plan"]
        return (lambda doc: fold_trigger(doc, plan)), kind_of(plan.get("orderId"))
    if activity == "late":
        mark = record["late"]
        return (lambda doc: fold_late(doc, mark)), "order"
    result = record["result"]
    return (lambda doc: fold_result(doc, result)), kind_of(result.get("orderId"))

"""The look-up answers of the operator API, read from this worker's tables (call them on the key's
owner: `owners.on_owner`)."""

from __future__ import annotations

from typing import Any

from faust import web

from service.app import pending_links_table, recipes_table
from service.operators.auth import access
from service.operators.owners import ask_owner, changelog, owner_of
from service.operators.request_checks import Refused
from service.planning.access import Access, visible_view
from service.planning.links import order_number_key
from service.planning.order_view import undelivered_lines
from service.planning.view_answers import answer
from service.streams.stages.order_view import orders_waiting_for, view_rows
from service.streams.state.live_views import order_numbers_view


async def waiting_for_recipe(request: web.Request, doc: dict[str, Any] | None, order_id: str) -> set[str]:
    """Recipes of the order whose link waits for its recipe in the join (asked of their owners)."""
    waiting = set()
    for recipe_id in undelivered_lines(doc or {}, order_id):
        owner = owner_of(changelog(pending_links_table), recipe_id)
        if owner is None:
            orders = orders_waiting_for(recipe_id, access(request).tenant)
        else:
            found = await ask_owner(request, owner.with_path(f"/v1/internal/pending-links/{recipe_id}"))
            orders = set(found["orderIds"])
        if order_id in orders:
            waiting.add(recipe_id)
    return waiting


async def order_answer(request: web.Request, order_id: str) -> dict[str, Any]:
    # Another tenant's order is, to a tenant token, one that does not exist: the same 404, word for word.
    doc = visible_view(access(request), view_rows.get(order_id), "order", order_id)
    body = answer(doc, "order", order_id, await waiting_for_recipe(request, doc, order_id))
    if body is None:
        raise Refused(404, f"no order with orderId {order_id!r} is known")
    return body


def recipe_answer(who: Access, recipe_id: str) -> dict[str, Any]:
    body = answer(visible_view(who, view_rows.get(recipe_id), "recipe", recipe_id), "recipe", recipe_id, set())
    if body is None:
        stored = recipes_table.get(recipe_id)
        if stored is None or not who.sees(stored["tenant"]):
            raise Refused(404, f"no recipe with recipeId {recipe_id!r} is known")
        body = {"kind": "recipe", "recipeId": recipe_id, "tenant": stored["tenant"], "summary": "none"}
        body.update(integrations=[], orders=[], triggers=[])
    return body


def resolve_order_number(who: Access, tenant: str, order_number: str) -> str:
    order_id = order_numbers_view.get(order_number_key(tenant, order_number)) if who.sees(tenant) else None
    if order_id is None:
        raise Refused(404, f"tenant {tenant} has no order number {order_number!r}")
    return order_id


def listed(entry: dict[str, Any]) -> dict[str, Any]:
    """A line of a tenant's list as the API shows it."""
    key = "orderId" if entry["kind"] == "order" else "recipeId"
    return {
        "kind": entry["kind"],
        key: entry["id"],
        "orderNumber": entry.get("orderNumber"),
        "placedAt": entry.get("occurredAt"),
        "updatedAt": entry.get("updatedAt"),
        "summary": entry["summary"],
        "integrations": [{"integrationId": i, "state": s} for i, s in (entry.get("integrations") or {}).items()],
        # An order event was not delivered within an integration's deliverWithinMinutes.
        "late": bool(entry.get("late")),
    }

"""What a manual trigger sends: the links its mode selects, and where each goes (pure).

`all` runs the trigger's links as they are; `failed-only` keeps one link per (recipe, integration)
whose latest delivery failed for good, so that nothing delivered is sent again.
"""

from __future__ import annotations

from typing import Any

from service.contracts import Integration, OrderLink, TriggerMode
from service.planning.commands import delivery_id
from service.planning.order_view import deliveries_of, delivery_state, latest_by_pair, own_deliveries, planned_order
from service.planning.routing import route
from service.planning.view_keys import Kind


def failed_pairs(doc: dict[str, Any] | None, kind: Kind, key: str) -> set[tuple[str, str]]:
    """(recipeId, integrationId) whose latest delivery failed for good."""
    latest = latest_by_pair(own_deliveries(doc or {}, kind, key))
    return {pair for pair, entry in latest.items() if delivery_state(entry) == "failed"}


def select_links(
    links: list[OrderLink], mode: TriggerMode, doc: dict[str, Any] | None, kind: Kind, key: str
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
    for entry in sorted(deliveries_of(doc or {}).values(), key=planned_order):
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

"""From an order event to what the join needs: its links (one per recipe) and its stored summary."""

from __future__ import annotations

from typing import Any

from service.contracts import OrderEvent, OrderLink, Trigger


def order_links(order: OrderEvent) -> list[OrderLink]:
    """One link per distinct recipe of the order: deliveries are per (event, recipe, integration)."""
    seen: dict[str, OrderLink] = {}
    for item in order.lineItems:
        seen.setdefault(
            item.recipeId,
            OrderLink(
                eventId=order.eventId,
                eventType=order.type,
                occurredAt=order.occurredAt,
                tenant=order.tenant,
                orderId=order.orderId,
                orderNumber=order.orderNumber,
                itemId=item.itemId,
                recipeId=item.recipeId,
            ),
        )
    return list(seen.values())


def line_items(order: OrderEvent) -> list[dict[str, Any]]:
    """An order's lines as the service keeps them (the platform's association fields and the SKU)."""
    return [
        {"itemId": i.itemId, "recipeId": i.recipeId, "itemQuantity": i.itemQuantity, "sku": i.sku}
        for i in order.lineItems
    ]


def accepted_order(order: OrderEvent) -> dict[str, Any]:
    """What goes on order-events: the fields the service uses, nothing else. Personal data and
    unknown fields stay on the upstream topic, so they are never copied into the service's own."""
    return {
        "type": order.type,
        "eventId": order.eventId,
        "occurredAt": order.occurredAt.isoformat(),
        "tenant": order.tenant,
        "orderId": order.orderId,
        "orderNumber": order.orderNumber,
        "lineItems": line_items(order),
    }


def order_number_key(tenant: str, order_number: str) -> str:
    return f"{tenant}/{order_number}"


def order_summary(order: OrderEvent, previous: dict[str, Any] | None) -> dict[str, Any]:
    """What the service keeps of an order: no customer, no address; cancellation is sticky."""
    cancelled_at = (previous or {}).get("cancelledAt")
    if order.type == "order.cancelled":
        cancelled_at = cancelled_at or order.occurredAt.isoformat()
    return {
        "tenant": order.tenant,
        "orderId": order.orderId,
        "orderNumber": order.orderNumber,
        "lineItems": line_items(order),
        "lastEventType": order.type,
        "lastEventId": order.eventId,
        "occurredAt": order.occurredAt.isoformat(),
        "cancelledAt": cancelled_at,
    }


def trigger_links(trigger: Trigger, order: dict[str, Any] | None) -> list[OrderLink]:
    """A manual trigger's links: the recipe it names (raw feed), or every recipe of the order.

    The order is delivered as its latest event; the triggerId is the event id, so a trigger always
    delivers again, even where the same delivery succeeded before.
    """
    common = {
        "eventId": trigger.triggerId,
        "occurredAt": trigger.requestedAt,
        "tenant": trigger.tenant,
        "manual": True,
        "integrationId": trigger.integrationId,
    }
    if order is None:
        assert trigger.recipeId is not None
        return [OrderLink(eventType="recipe.created", recipeId=trigger.recipeId, **common)]
    seen: dict[str, OrderLink] = {}
    for item in order["lineItems"]:
        seen.setdefault(
            item["recipeId"],
            OrderLink(
                eventType=order["lastEventType"],
                orderId=order["orderId"],
                orderNumber=order["orderNumber"],
                itemId=item["itemId"],
                recipeId=item["recipeId"],
                **common,
            ),
        )
    return list(seen.values())

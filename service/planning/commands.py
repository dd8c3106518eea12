"""Building delivery commands: one per (event, recipe, integration), with final file names."""

from __future__ import annotations

import hashlib
from datetime import datetime

from service.contracts import DeliveryCommand, DeliveryFile, EventType, Integration, OrderLink, RecipeEvent
from service.planning.naming import delivery_names, file_prefix
from service.planning.view_keys import view_key


def delivery_id(event_id: str, recipe_id: str, integration_id: str) -> str:
    """Stable across replays and restarts: the same event, recipe and integration give the same id."""
    digest = hashlib.sha256(f"{event_id}\x1f{recipe_id}\x1f{integration_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


def delivery_files(recipe: RecipeEvent, prefix: str) -> list[DeliveryFile]:
    names = delivery_names(prefix, [(f.name, f.type) for f in recipe.files])
    return [
        DeliveryFile(kind=f.kind, name=n, mimeType=f.mimeType, url=f.url, type=f.type)
        for f, n in zip(recipe.files, names, strict=True)
    ]


def commands(
    integrations: list[Integration],
    now: datetime,
    *,
    tenant: str,
    recipe_id: str,
    files: list[DeliveryFile],
    event_id: str,
    event_type: EventType,
    occurred_at: datetime,
    order_id: str | None = None,
    order_number: str | None = None,
    manual: bool = False,
    replay: str | None = None,
) -> list[DeliveryCommand]:
    """One command per integration for one (event, recipe)."""
    return [
        DeliveryCommand(
            deliveryId=delivery_id(event_id, recipe_id, i.id),
            integrationId=i.id,
            integrationType=i.type,
            tenant=tenant,
            eventType=event_type,
            eventId=event_id,
            recipeId=recipe_id,
            orderId=order_id,
            orderNumber=order_number,
            files=files,
            manual=manual,
            occurredAt=occurred_at,
            createdAt=now,
            replay=replay,
        )
        for i in integrations
    ]


def recipe_commands(
    recipe: RecipeEvent, integrations: list[Integration], now: datetime, replay: str | None = None
) -> list[DeliveryCommand]:
    """The raw feed: one command per integration for a new recipe."""
    return commands(
        integrations,
        now,
        tenant=recipe.tenant,
        recipe_id=recipe.recipeId,
        files=delivery_files(recipe, file_prefix(recipe.recipeId, None, None)),
        event_id=recipe.eventId,
        event_type=recipe.type,
        occurred_at=recipe.occurredAt,
        replay=replay,
    )


def link_commands_with_files(
    link: OrderLink, integrations: list[Integration], now: datetime, *, files: list[DeliveryFile], replay: str | None
) -> list[DeliveryCommand]:
    """An order line's or a manual trigger's commands, with these files."""
    return commands(
        integrations,
        now,
        tenant=link.tenant,
        recipe_id=link.recipeId,
        files=files,
        event_id=link.eventId,
        event_type=link.eventType,
        occurred_at=link.occurredAt,
        order_id=link.orderId,
        order_number=link.orderNumber,
        manual=link.manual,
        replay=replay,
    )


def link_commands(
    link: OrderLink, recipe: RecipeEvent, integrations: list[Integration], now: datetime
) -> list[DeliveryCommand]:
    """An order line or a manual trigger, joined to its recipe (same recipe id, same tenant)."""
    files = delivery_files(recipe, file_prefix(recipe.recipeId, link.orderId, link.orderNumber))
    return link_commands_with_files(link, integrations, now, files=files, replay=link.replay)


def delivery_key(command: DeliveryCommand) -> str:
    """Kafka key of a delivery: one order's deliveries share the orders topic's partition."""
    return view_key(command.orderId, command.recipeId)

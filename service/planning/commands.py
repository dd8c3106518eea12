"""Building delivery commands: one per (event, recipe, integration), with final file names."""

from __future__ import annotations

import hashlib
from datetime import datetime

from service.contracts import DeliveryCommand, DeliveryFile, Integration, OrderLink, RecipeEvent
from service.planning.naming import delivered_name, file_prefix, unique_names


def delivery_id(event_id: str, recipe_id: str, integration_id: str) -> str:
    """Stable across replays and restarts: the same event, recipe and integration give the same id."""
    digest = hashlib.sha256(f"{event_id}\x1f{recipe_id}\x1f{integration_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


def delivery_files(recipe: RecipeEvent, prefix: str) -> list[DeliveryFile]:
    names = unique_names([delivered_name(prefix, f.name, f.type) for f in recipe.files])
    return [
        DeliveryFile(kind=f.kind, name=n, mimeType=f.mimeType, url=f.url)
        for f, n in zip(recipe.files, names, strict=True)
    ]


def recipe_commands(recipe: RecipeEvent, integrations: list[Integration], now: datetime) -> list[DeliveryCommand]:
    files = delivery_files(recipe, file_prefix(recipe.recipeId))
    return [
        DeliveryCommand(
            deliveryId=delivery_id(recipe.eventId, recipe.recipeId, i.id),
            integrationId=i.id,
            integrationType=i.type,
            tenant=recipe.tenant,
            eventType=recipe.type,
            eventId=recipe.eventId,
            recipeId=recipe.recipeId,
            files=files,
            occurredAt=recipe.occurredAt,
            createdAt=now,
        )
        for i in integrations
    ]


def order_commands(
    link: OrderLink, recipe: RecipeEvent, integrations: list[Integration], now: datetime
) -> list[DeliveryCommand]:
    files = delivery_files(recipe, file_prefix(recipe.recipeId, link.orderId, link.orderNumber))
    return [
        DeliveryCommand(
            deliveryId=delivery_id(link.eventId, recipe.recipeId, i.id),
            integrationId=i.id,
            integrationType=i.type,
            tenant=link.tenant,
            eventType=link.eventType,
            eventId=link.eventId,
            recipeId=recipe.recipeId,
            orderId=link.orderId,
            orderNumber=link.orderNumber,
            files=files,
            manual=link.manual,
            occurredAt=link.occurredAt,
            createdAt=now,
        )
        for i in integrations
    ]


def delivery_key(command: DeliveryCommand) -> str:
    """Kafka key of a delivery: one order's deliveries share the orders topic's partition."""
    return command.orderId or command.recipeId

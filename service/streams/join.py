"""The join: recipes meet the order links that point at them, in one agent per partition.

Recipes and order links are both keyed by recipeId and have the same partition count, so a recipe
and its links always land in the same partition of this single agent. Processing them in one
stream (not two agents) means a link can never slip between "recipe missing" and "recipe stored".
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from faust.types import StreamT

from service.app import (
    app,
    catalog,
    deliveries_topic,
    pending_links_table,
    recipes_table,
)
from service.contracts import DeliveryCommand, OrderLink, RecipeEvent
from service.planning.commands import delivery_key, link_commands, recipe_commands
from service.planning.replay import REPLAY_HEADER, REPLAY_INTEGRATION_HEADER, header
from service.planning.routing import route
from service.streams.configs import all_integrations
from service.streams.publish import publish
from service.streams.rejects import accepted, handle_each
from service.validation import RECIPE

log = logging.getLogger(__name__)

join_topic = app.topic(
    catalog["recipes"].name, catalog["order-links"].name, key_serializer="raw", value_serializer="raw"
)


@app.agent(join_topic)
async def join_recipes_and_orders(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_joined)


async def handle_joined(event: Any) -> None:
    if event.message.topic == catalog["recipes"].name:
        await handle_recipe(event)
    else:
        await handle_link(event)


async def handle_recipe(event: Any) -> None:
    recipe = await accepted(RECIPE, event)
    if recipe is None:
        return
    recipes_table[recipe.recipeId] = recipe.model_dump(mode="json")
    now = datetime.now(UTC)
    integrations = await all_integrations()
    replay = header(event.headers, REPLAY_HEADER)
    only = header(event.headers, REPLAY_INTEGRATION_HEADER) if replay else None
    commands = recipe_commands(recipe, route(recipe.type, recipe.tenant, integrations, only=only), now, replay=replay)
    waiting = [OrderLink.model_validate(doc) for doc in pending_links_table.get(recipe.recipeId) or []]
    for link in waiting:
        commands += commands_for_link(link, recipe, integrations, now)
    await publish(deliveries_topic, [(delivery_key(c), c) for c in commands])
    if waiting:
        del pending_links_table[recipe.recipeId]
    log.info(
        "recipe accepted",
        extra={
            "recipeId": recipe.recipeId,
            "deliveries": len(commands),
            "released": len(waiting),
            **({"replay": replay} if replay else {}),
        },
    )


def commands_for_link(
    link: OrderLink, recipe: RecipeEvent, integrations: list[Any], now: datetime
) -> list[DeliveryCommand]:
    if recipe.tenant != link.tenant:
        log.warning(
            "order line points at another tenant's recipe",
            extra={"orderId": link.orderId, "recipeId": link.recipeId},
        )
        return []
    return link_commands(link, recipe, route(link.eventType, link.tenant, integrations, only=link.integrationId), now)


async def handle_link(event: Any) -> None:
    link = OrderLink.model_validate_json(event.value)
    stored = recipes_table.get(link.recipeId)
    if stored is None:
        pending_links_table[link.recipeId] = [
            *(pending_links_table.get(link.recipeId) or []),
            link.model_dump(mode="json"),
        ]
        log.info("order link waits for its recipe", extra={"orderId": link.orderId, "recipeId": link.recipeId})
        return
    commands = commands_for_link(link, RecipeEvent.model_validate(stored), await all_integrations(), datetime.now(UTC))
    await publish(deliveries_topic, [(delivery_key(c), c) for c in commands])
    log.info(
        "order link joined",
        extra={"orderId": link.orderId, "recipeId": link.recipeId, "deliveries": len(commands)},
    )

"""The join: recipes meet the order links that point at them, in one agent per partition.

The agent reads `recipes`, `recipe-events` and `order-links`. An upstream recipe is validated; when it
already sits on the partition the service's producer would give its recipeId (and the topics have as
many partitions), it is joined at once, else it is re-published keyed by the service onto
recipe-events and joined from there. Accepted recipes and order links are thus always handled in the
partition of their recipeId, whatever partitioner the upstream producers used, by this single agent:
a link can never slip between "recipe missing" and "recipe stored". Its sends are settled by the
barrier (`barrier.py`); releasing links that waited for their recipe waits for its commands before
the waiting entries are removed, so a crash between the two never loses them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.types import StreamT

from service.app import (
    app,
    catalog,
    deliveries_topic,
    order_links_topic,
    recipe_events_topic,
    recipes_table,
    settings,
)
from service.contracts import DeliveryCommand, OrderLink, RecipeEvent
from service.planning.commands import delivery_key, link_commands, recipe_commands
from service.planning.order_view import fold_recipe_order
from service.planning.pending import EXPIRED, SWEEP, entry_link, expired_commands, split_expired
from service.planning.replay import REPLAY_HEADER, REPLAY_INTEGRATION_HEADER, header
from service.planning.routing import route
from service.streams.machinery.barrier import barrier, handle_held
from service.streams.machinery.entrance import enter
from service.streams.machinery.publish import publish
from service.streams.stages.deliver import record
from service.streams.stages.order_view import fold_here
from service.streams.stages.outcomes import after_failure
from service.streams.state import waiting_links
from service.streams.state.live_views import all_integrations
from service.validation import RECIPE

log = logging.getLogger(__name__)

RECIPES = catalog["recipes"].name
RECIPE_EVENTS = catalog["recipe-events"].name
join_topic = app.topic(
    RECIPES, RECIPE_EVENTS, catalog["order-links"].name, key_serializer="raw", value_serializer="raw"
)


@app.agent(join_topic)
async def join_recipes_and_orders(stream: StreamT[Any]) -> None:
    await handle_held(stream, handle_joined)


async def handle_joined(event: Any) -> None:
    topic = event.message.topic
    if topic == RECIPES:
        await enter(
            RECIPE, event, lambda r: r.recipeId, recipe_events_topic, lambda r: r.model_dump(mode="json"), handle_recipe
        )
    elif topic == RECIPE_EVENTS:
        # Validated at the entrance before it was re-published.
        await handle_recipe(RecipeEvent.model_validate_json(event.value), event)
    else:
        await handle_link(event)


async def handle_recipe(recipe: RecipeEvent, event: Any) -> None:
    recipes_table[recipe.recipeId] = recipe.model_dump(mode="json")
    now = datetime.now(UTC)
    integrations = await all_integrations()
    replay = header(event.headers, REPLAY_HEADER)
    only = header(event.headers, REPLAY_INTEGRATION_HEADER) if replay else None
    commands = recipe_commands(recipe, route(recipe.type, recipe.tenant, integrations, only=only), now, replay=replay)
    waiting = [entry_link(doc) for doc in waiting_links.entries(recipe.recipeId)]
    for link in waiting:
        commands += commands_for_link(link, recipe, integrations, now)
    if waiting:
        # Awaited here: the waiting entries are removed (their changelog records sent) only once the
        # broker has the commands that replace them.
        await publish(deliveries_topic, [(delivery_key(c), c) for c in commands])
        waiting_links.keep_only(recipe.recipeId)
    else:
        for command in commands:
            await barrier.send(deliveries_topic, delivery_key(command), command, cause=event)
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
    doc = orjson.loads(event.value)
    if isinstance(doc, dict) and doc.get(SWEEP):
        await expire_waiting_links(str(doc["recipeId"]))
        return
    link = OrderLink.model_validate(doc)
    ref = {"orderId": link.orderId, "orderNumber": link.orderNumber, "tenant": link.tenant}
    fold_here(link.recipeId, lambda view: fold_recipe_order(view, ref), None)
    stored = recipes_table.get(link.recipeId)
    if stored is None:
        waiting_links.add(link, datetime.now(UTC))
        log.info("order link waits for its recipe", extra={"orderId": link.orderId, "recipeId": link.recipeId})
        return
    commands = commands_for_link(link, RecipeEvent.model_validate(stored), await all_integrations(), datetime.now(UTC))
    for command in commands:
        await barrier.send(deliveries_topic, delivery_key(command), command, cause=event)
    log.info(
        "order link joined",
        extra={"orderId": link.orderId, "recipeId": link.recipeId, "deliveries": len(commands)},
    )


async def expire_waiting_links(recipe_id: str) -> None:
    """Links that waited longer than the limit fail for good, each with its failure notification."""
    now = datetime.now(UTC)
    expired, kept = split_expired(waiting_links.entries(recipe_id), now, settings.pending_link_ttl_seconds)
    if not expired:
        return
    integrations = await all_integrations()
    for link in expired:
        for integration in route(link.eventType, link.tenant, integrations, only=link.integrationId):
            [command] = expired_commands(link, [integration], now)
            final = await after_failure(command, integration, EXPIRED, permanent=True, retry_after=None)
            await record(command, now, outcome="failed", error=EXPIRED, final=final)
        log.warning(
            "order link expired: its recipe never arrived", extra={"orderId": link.orderId, "recipeId": recipe_id}
        )
    waiting_links.keep_only(recipe_id, kept)


@app.timer(interval=settings.pending_link_check_seconds)
async def sweep_waiting_links() -> None:
    """Each worker looks at the waiting links of its own partitions and asks the join (in the right
    partition, where the table may be changed) to expire what waited too long."""
    due = sorted(waiting_links.recipes_with_expired_links(datetime.now(UTC), settings.pending_link_ttl_seconds))
    await publish(order_links_topic, [(recipe_id, {SWEEP: True, "recipeId": recipe_id}) for recipe_id in due])

"""Agents at the entrances: validate every input message and re-publish it keyed by the service; keep
the orders table and pass orders on as links."""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT

from service.app import (
    app,
    integrations_topic,
    order_events_topic,
    order_index_topic,
    order_links_topic,
    orders_table,
    orders_topic,
    recipe_events_topic,
    recipes_topic,
    triggers_topic,
)
from service.contracts import OrderEvent
from service.planning.links import accepted_order, order_links, order_number_key, order_summary, trigger_links
from service.planning.replay import REPLAY_HEADER, REPLAY_INTEGRATION_HEADER, header, replay_marks
from service.streams.configs import order_numbers_view, order_views_ready, stored_integration
from service.streams.publish import publish
from service.streams.rejects import accepted, handle_each, reject
from service.streams.status import plan_trigger
from service.validation import ORDER, RECIPE, TRIGGER, Rejected

log = logging.getLogger(__name__)


@app.agent(recipes_topic)
async def ingest_recipes(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_recipe_event)


async def handle_recipe_event(event: Any) -> None:
    """Validate, then re-publish keyed by the service itself: the join's tables are partitioned by one
    partitioner whatever the upstream producer used (librdkafka's default is CRC32, not murmur2)."""
    recipe = await accepted(RECIPE, event)
    if recipe is None:
        return
    await publish(
        recipe_events_topic, [(recipe.recipeId, recipe.model_dump(mode="json"))], headers=replay_marks(event.headers)
    )


@app.agent(orders_topic)
async def ingest_orders(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_order_event)


async def handle_order_event(event: Any) -> None:
    """Validate, then re-publish keyed by the service itself, without personal data."""
    order = await accepted(ORDER, event)
    if order is None:
        return
    await publish(order_events_topic, [(order.orderId, accepted_order(order))], headers=replay_marks(event.headers))


@app.agent(order_events_topic)
async def keep_orders(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_order)


async def handle_order(event: Any) -> None:
    order = OrderEvent.model_validate_json(event.value)
    replay = header(event.headers, REPLAY_HEADER)
    stored = orders_table.get(order.orderId)
    # A replayed event is history: it must not take the place of the order's latest event.
    if replay is None or stored is None:
        orders_table[order.orderId] = order_summary(order, stored)
    await publish(order_index_topic, [(order_number_key(order.tenant, order.orderNumber), {"orderId": order.orderId})])
    links = order_links(order)
    if replay is not None:
        only = header(event.headers, REPLAY_INTEGRATION_HEADER)
        links = [link.model_copy(update={"replay": replay, "integrationId": only}) for link in links]
    await publish(order_links_topic, [(link.recipeId, link) for link in links])
    log.info(
        "order accepted",
        extra={
            "orderId": order.orderId,
            "type": order.type,
            "lines": len(order.lineItems),
            **({"replay": replay} if replay else {}),
        },
    )


# Every worker keeps its own copy of the integrations (streams/configs.py); this agent, consumed
# by the group, is where refused configurations are reported, once.
@app.agent(integrations_topic)
async def ingest_integrations(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_integration)


async def handle_integration(event: Any) -> None:
    if event.value is None:
        log.info("integration deleted", extra={"integrationId": (event.key or b"").decode("utf-8", "replace")})
        return
    config = stored_integration(event.key, event.value)
    if isinstance(config, Rejected):
        # A plain-text secret must not be copied onto a second topic.
        await reject(event.message, config.reasons, keep_value=not config.hide_value)
        return
    log.info(
        "integration stored",
        extra={"integrationId": config.id, "type": config.type, "enabled": config.enabled},
    )


@app.agent(triggers_topic)
async def ingest_triggers(stream: StreamT[Any]) -> None:
    await handle_each(stream, handle_trigger)


async def handle_trigger(event: Any) -> None:
    """Resolve a manual trigger to the recipes it names and send them to the join as manual links."""
    trigger = await accepted(TRIGGER, event)
    if trigger is None:
        return
    if trigger.orderNumber is not None:
        await order_views_ready()
        order_id = order_numbers_view.get(order_number_key(trigger.tenant, trigger.orderNumber))
        if order_id is None:
            await reject(event.message, [f"tenant {trigger.tenant} has no order number {trigger.orderNumber!r}"])
            return
        # Re-keyed by orderId, the trigger meets the orders table in its order's partition.
        resolved = trigger.model_copy(update={"orderId": order_id, "orderNumber": None})
        await publish(triggers_topic, [(order_id, resolved.model_dump(mode="json", exclude_none=True))])
        return
    order = orders_table.get(trigger.orderId) if trigger.orderId else None
    if trigger.orderId is not None and (order is None or order["tenant"] != trigger.tenant):
        await reject(event.message, [f"tenant {trigger.tenant} has no order with orderId {trigger.orderId!r}"])
        return
    links = await plan_trigger(trigger, order, trigger_links(trigger, order))
    await publish(order_links_topic, [(link.recipeId, link) for link in links])
    log.info(
        "trigger accepted",
        extra={
            "triggerId": trigger.triggerId,
            "tenant": trigger.tenant,
            "recipes": len(links),
            "integrationId": trigger.integrationId,
        },
    )

"""The orders stage, the integrations' reporter and the triggers stage.

The orders stage reads `orders` and `order-events` in one agent. An upstream order is validated; when
it already sits on the partition the service's producer would give its orderId (a producer that
hashes as Java clients do, and as many partitions on both topics), it is handled at once, else it is
re-published keyed by the service onto order-events and handled from there (a CRC32 producer's
partition is not the one the tables' rows live in). Handling keeps the orders table, the order-number
index (for a new or renumbered order only), the order's links to the join and its row of the
operators' view, all without waiting for the broker: the barrier settles them (`barrier.py`).
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import StreamT

from service.app import (
    app,
    catalog,
    deadlines_table,
    integrations_topic,
    order_events_topic,
    order_index_topic,
    order_links_topic,
    orders_table,
    triggers_topic,
)
from service.contracts import OrderEvent
from service.planning.deadlines import deadlines_for
from service.planning.links import accepted_order, order_links, order_number_key, order_summary, trigger_links
from service.planning.order_view import fold_order
from service.planning.replay import REPLAY_HEADER, REPLAY_INTEGRATION_HEADER, header
from service.planning.routing import route
from service.streams.machinery.barrier import barrier, fetched_in_this_generation, handle_held
from service.streams.machinery.entrance import enter
from service.streams.machinery.rejects import accepted, handle_each, reject
from service.streams.machinery.row_cache import RowCache, handling
from service.streams.stages.order_view import fold_here, plan_trigger
from service.streams.state.live_views import (
    integrations_promising_a_time,
    order_numbers_view,
    order_views_ready,
    stored_integration,
)
from service.validation import ORDER, TRIGGER, Rejected

log = logging.getLogger(__name__)

ORDER_ROWS_CACHED = 1024
# orderId -> the order's summary; read by the delivery stage (a cancellation) and the triggers stage.
order_rows: RowCache[dict[str, Any]] = barrier.cache(
    RowCache(orders_table, cached=ORDER_ROWS_CACHED, is_current=fetched_in_this_generation)
)

ORDERS = catalog["orders"].name
ORDER_EVENTS = catalog["order-events"].name
orders_stage_topic = app.topic(ORDERS, ORDER_EVENTS, key_serializer="raw", value_serializer="raw")


@app.agent(orders_stage_topic)
async def keep_orders(stream: StreamT[Any]) -> None:
    await handle_held(stream, handle_order_record)


async def handle_order_record(event: Any) -> None:
    if event.message.topic != ORDERS:
        await keep_order(OrderEvent.model_validate_json(event.value), event)
        return
    # Re-published without personal data: it stays on the upstream topic.
    await enter(ORDER, event, lambda o: o.orderId, order_events_topic, accepted_order, keep_order)


async def keep_order(order: OrderEvent, event: Any) -> None:
    replay = header(event.headers, REPLAY_HEADER)
    stored = order_rows.get(order.orderId)
    # A replayed event is history: it must not take the place of the order's latest event.
    if replay is None or stored is None:
        order_rows.put(order.orderId, order_summary(order, stored), event)
    # The index only changes with a new order (or a new number). The orders row is written after this
    # send is acknowledged (the barrier), so an order read again after a crash is still new here.
    if stored is None or stored.get("orderNumber") != order.orderNumber or stored.get("tenant") != order.tenant:
        key = order_number_key(order.tenant, order.orderNumber)
        await barrier.send(order_index_topic, key, {"orderId": order.orderId}, cause=event)
    links = order_links(order)
    if replay is not None:
        only = header(event.headers, REPLAY_INTEGRATION_HEADER)
        links = [link.model_copy(update={"replay": replay, "integrationId": only}) for link in links]
    for link in links:
        await barrier.send(order_links_topic, link.recipeId, link, cause=event)
    if replay is None:  # a replayed event is history: its deadline passed long ago
        await keep_deadlines(order, event)
    summary = order_summary(order, None)
    fold_here(order.orderId, lambda doc: fold_order(doc, summary), "order")
    log.info(
        "order accepted",
        extra={
            "orderId": order.orderId,
            "type": order.type,
            "lines": len(order.lineItems),
            **({"replay": replay} if replay else {}),
        },
    )


async def keep_deadlines(order: OrderEvent, event: Any) -> None:
    """A row per integration of the event that promises a time (`planning/deadlines.py`), in the
    order's partition, for the sweep in `stages/deadlines.py`; the barrier's flush puts its changelog
    record on the broker before the event is acknowledged. None for integrations without a promise."""
    promising = await integrations_promising_a_time()
    # An event fetched before a rebalance writes nothing: its partition's next owner reads it again.
    if not promising or not fetched_in_this_generation(event):
        return
    rows = deadlines_for(order, route(order.type, order.tenant, promising))
    with handling(event):
        for key, row in rows:
            deadlines_table[key] = row


# Every worker keeps its own copy of the integrations (streams/state/live_views.py); this agent, consumed
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
    await handle_held(stream, handle_trigger)


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
        await barrier.send(triggers_topic, order_id, resolved.model_dump(mode="json", exclude_none=True), cause=event)
        return
    order = order_rows.get(trigger.orderId) if trigger.orderId else None
    if trigger.orderId is not None and (order is None or order["tenant"] != trigger.tenant):
        await reject(event.message, [f"tenant {trigger.tenant} has no order with orderId {trigger.orderId!r}"])
        return
    links = await plan_trigger(trigger, order, trigger_links(trigger, order))
    for link in links:
        await barrier.send(order_links_topic, link.recipeId, link, cause=event)
    log.info(
        "trigger accepted",
        extra={
            "triggerId": trigger.triggerId,
            "tenant": trigger.tenant,
            "recipes": len(links),
            "integrationId": trigger.integrationId,
        },
    )

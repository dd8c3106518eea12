"""Agents at the entrances: validate every input message, keep state, and pass orders on as links."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import StreamT

from service.app import (
    app,
    integrations_topic,
    order_index_topic,
    order_links_topic,
    orders_table,
    orders_topic,
    settings,
    triggers_topic,
)
from service.contracts import Integration, OrderEvent, Trigger
from service.planning.links import order_links, order_number_key, order_summary
from service.streams.publish import publish
from service.streams.rejects import reject
from service.validation import INTEGRATION, ORDER, TRIGGER, Rejected, integration_reasons, parse_event

log = logging.getLogger(__name__)


async def guarded(event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run one message's handler; an unexpected error parks the message instead of losing it."""
    try:
        await handle(event)
    except Exception as exc:  # an agent must never die on one message
        log.exception("event handling failed", extra={"topic": event.message.topic, "offset": event.message.offset})
        await reject(event.message, [f"internal error while handling the event: {type(exc).__name__}"])


@app.agent(orders_topic)
async def ingest_orders(stream: StreamT[Any]) -> None:
    async for event in stream.events():
        await guarded(event, handle_order)


async def handle_order(event: Any) -> None:
    order = parse_event(
        ORDER, event.key, event.value, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(order, Rejected):
        await reject(event.message, order.reasons)
        return
    assert isinstance(order, OrderEvent)
    orders_table[order.orderId] = order_summary(order, orders_table.get(order.orderId))
    await publish(order_index_topic, [(order_number_key(order.tenant, order.orderNumber), {"orderId": order.orderId})])
    await publish(order_links_topic, [(link.recipeId, link) for link in order_links(order)])
    log.info("order accepted", extra={"orderId": order.orderId, "type": order.type, "lines": len(order.lineItems)})


# Every worker keeps its own copy of the integrations (streams/configs.py); this agent, consumed
# by the group, is where refused configurations are reported, once.
@app.agent(integrations_topic)
async def ingest_integrations(stream: StreamT[Any]) -> None:
    async for event in stream.events():
        await guarded(event, handle_integration)


async def handle_integration(event: Any) -> None:
    if event.value is None:
        log.info("integration deleted", extra={"integrationId": (event.key or b"").decode("utf-8", "replace")})
        return
    config = parse_event(
        INTEGRATION,
        event.key,
        event.value,
        schemas_dir=settings.schemas_dir,
        max_bytes=settings.max_event_bytes,
    )
    reasons = config.reasons if isinstance(config, Rejected) else []
    if isinstance(config, Integration):
        reasons = integration_reasons(config, stored=True, allow_http_hooks=settings.allow_http_hooks)
    if reasons:
        # A plain-text secret must not be copied onto a second topic.
        await reject(event.message, reasons, keep_value=not any("plain text" in r for r in reasons))
        return
    assert isinstance(config, Integration)
    log.info(
        "integration stored",
        extra={"integrationId": config.id, "type": config.type, "enabled": config.enabled},
    )


@app.agent(triggers_topic)
async def ingest_triggers(stream: StreamT[Any]) -> None:
    async for event in stream.events():
        await guarded(event, handle_trigger)


async def handle_trigger(event: Any) -> None:
    trigger = parse_event(
        TRIGGER, event.key, event.value, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(trigger, Rejected):
        await reject(event.message, trigger.reasons)
        return
    assert isinstance(trigger, Trigger)
    log.info("trigger accepted", extra={"triggerId": trigger.triggerId, "tenant": trigger.tenant})

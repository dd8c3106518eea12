"""The operators' view: each order's (and raw-feed recipe's) deliveries, and each tenant's recent list.

Both tables are keyed by the raw bytes of their topic's message key (`key_serializer="raw"`), so
that Faust's router, which hashes a table key with the producer's partitioner, finds the worker
that owns the row: `order-view` is keyed like delivery-results (orderId, or recipeId for the raw
feed), `tenant-activity` by tenant.

    order-events ──► track_orders ──► order-activity (keyed like delivery-results)
    deliveries, delivery-results, order-activity ──► keep_order_views ──► order-view table
                                                   └─ an order's line changed ──► tenant-activity ──► tenant table
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Literal, cast

import faust
import orjson
from faust.types import StreamT

from service.app import app, catalog, order_events_topic, topic
from service.contracts import OrderEvent, OrderLink, Trigger
from service.planning.links import order_summary
from service.planning.order_view import (
    fold_command,
    fold_order,
    fold_recipe_order,
    fold_result,
    fold_trigger,
    planned_deliveries,
    remember,
    select_links,
    tenant_entry,
)
from service.planning.routing import route
from service.streams import waiting_links
from service.streams.concurrency import revoked_partitions
from service.streams.configs import all_integrations
from service.streams.publish import publish
from service.streams.rejects import handle_each
from service.streams.write_behind import WriteBehindRows

log = logging.getLogger(__name__)

order_activity_topic = topic("order-activity")
tenant_activity_topic = topic("tenant-activity")
view_sources = app.topic(
    catalog["deliveries"].name,
    catalog["delivery-results"].name,
    catalog["order-activity"].name,
    key_serializer="raw",
    value_serializer="raw",
)


RAW_KEYS: faust.Schema = faust.Schema(key_serializer="raw", value_serializer="json")


def raw_keyed_table(name: str) -> Any:
    return app.Table(name, partitions=catalog[f"table:{name}"].partitions, schema=RAW_KEYS)


# orderId (or raw-feed recipeId) -> service.planning.order_view document
order_view_table = raw_keyed_table("order-view")
# tenant -> {"orders": [...], "recipes": [...]}, newest first
tenant_table = raw_keyed_table("tenant-activity")


@app.agent(order_events_topic)
async def track_orders(stream: StreamT[Any]) -> None:
    await handle_each(stream, track_order)


async def track_order(event: Any) -> None:
    """Re-key an accepted order's summary for the view (order-events carries only accepted orders)."""
    order = OrderEvent.model_validate_json(event.value)
    ref = {"orderId": order.orderId, "orderNumber": order.orderNumber, "tenant": order.tenant}
    await publish(
        order_activity_topic,
        [
            (order.orderId, {"activity": "order", "order": order_summary(order, None)}),
            *((r, {"activity": "recipe-order", "order": ref}) for r in sorted({i.recipeId for i in order.lineItems})),
        ],
    )


@app.agent(view_sources)
async def keep_order_views(stream: StreamT[Any]) -> None:
    await handle_each(stream, fold_activity)


async def fold_activity(event: Any) -> None:
    key = event.key.decode()
    try:
        doc = orjson.loads(event.value)
    except orjson.JSONDecodeError:
        if event.message.topic == catalog["deliveries"].name:
            return  # parked by the delivery agent
        raise
    current = order_view_table.get(key)
    kind: Literal["order", "recipe"]
    if event.message.topic == catalog["order-activity"].name:
        activity = doc["activity"]
        if activity == "order":
            updated, kind = fold_order(current, doc["order"]), "order"
        elif activity == "recipe-order":
            order_view_table[key] = fold_recipe_order(current, doc["order"])
            return
        else:
            plan = doc["plan"]
            updated, kind = fold_trigger(current, plan), "order" if plan.get("orderId") else "recipe"
    elif event.message.topic == catalog["deliveries"].name:
        try:
            updated = fold_command(current, doc)
        except (KeyError, TypeError, AttributeError):
            return  # the delivery agent parks a malformed command; reporting it twice would mislead
        kind = "order" if doc.get("orderId") else "recipe"
    else:
        updated, kind = fold_result(current, doc), "order" if doc.get("orderId") else "recipe"
    await list_for_tenant(updated, kind, key)
    order_view_table[key] = updated


async def list_for_tenant(doc: dict[str, Any], kind: Literal["order", "recipe"], key: str) -> None:
    """Send the order's (or raw-feed recipe's) line to its tenant's list when it changed; the last
    line sent is kept in the document to know."""
    order = doc.get("order") or {}
    tenant = str(order.get("tenant") or "")
    expects = bool(tenant) and bool(route(order.get("lastEventType", ""), tenant, await all_integrations()))
    entry = tenant_entry(doc, kind, key, expects)
    listed = dict(doc.get("listed") or {})
    if entry is None or entry == listed.get(kind) or not entry.get("tenant"):
        return
    await publish(tenant_activity_topic, [(entry["tenant"], entry)])
    listed[kind] = entry
    doc["listed"] = listed


@app.agent(tenant_activity_topic)
async def keep_tenant_activity(stream: Any) -> None:
    """Each entry folded into its tenant's row in memory; rows written (and entries acknowledged) in
    batches by `tenant_rows`. A full batch is written before the next entry is read."""
    writer = asyncio.create_task(tenant_rows.write_after(TENANT_ROWS_WRITE_AFTER_SECONDS))
    try:
        await handle_each(stream, fold_tenant_entry, done=tenant_rows.done)
    finally:
        writer.cancel()


def fetched_in_this_generation(event: Any) -> bool:
    """Faust's own test for a message fetched before the last rebalance (faust/streams.py)."""
    return bool(event.message.generation_id == app.consumer_generation_id)


# A worker may serve many tenants: the decoded rows kept are bounded. A changed row is written this
# long after the first change waiting, or once this many entries wait (rebalances and failed writes
# aside).
TENANT_ROWS_CACHED = 64
TENANT_ROWS_BATCH = 500
TENANT_ROWS_WRITE_AFTER_SECONDS = 0.25
tenant_rows: WriteBehindRows[dict[str, Any]] = WriteBehindRows(
    tenant_table,
    cached=TENANT_ROWS_CACHED,
    batch=TENANT_ROWS_BATCH,
    rebalancing=lambda: bool(app.rebalancing),
    is_current=fetched_in_this_generation,
)


async def fold_tenant_entry(event: Any) -> None:
    key = event.key.decode()
    tenant_rows.put(key, remember(tenant_rows.get(key), orjson.loads(event.value)), event)


async def _tenant_partitions_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    tenant_rows.forget(revoked_partitions(args, kwargs))


async def _tenant_partitions_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
    tenant_rows.drop_cached()


# faust's stub wants a positional-only sender and a `signal` keyword; the receiver takes both as given.
app.on_partitions_revoked.connect(cast(Any, _tenant_partitions_revoked))
app.on_partitions_assigned.connect(cast(Any, _tenant_partitions_assigned))


async def plan_trigger(trigger: Trigger, order: dict[str, Any] | None, links: list[OrderLink]) -> list[OrderLink]:
    """A trigger's links for its mode, its plan recorded for the operators; none for a dry run.

    Runs in the trigger's partition, which is its target's partition of order-view (same key, same
    partition count, every producer hashing with murmur2)."""
    kind: Literal["order", "recipe"] = "order" if order is not None else "recipe"
    key = order["orderId"] if order is not None else str(trigger.recipeId)
    doc = order_view_table.get(key)
    chosen = select_links(links, trigger.mode, doc, kind, key)
    plan = trigger_plan(
        trigger, kind, key, planned_deliveries(trigger.triggerId, chosen, await all_integrations(), doc)
    )
    if trigger.dryRun:
        return []
    await publish(order_activity_topic, [(key, {"activity": "trigger", "plan": plan})])
    return chosen


def trigger_plan(
    trigger: Trigger, kind: Literal["order", "recipe"], key: str, deliveries: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "triggerId": trigger.triggerId,
        "requestedAt": trigger.requestedAt.isoformat(),
        "requestedBy": trigger.requestedBy or None,
        "tenant": trigger.tenant,
        "mode": trigger.mode,
        "integrationId": trigger.integrationId,
        "orderId": key if kind == "order" else None,
        "recipeId": key if kind == "recipe" else None,
        "plannedAt": datetime.now(UTC).isoformat(),
        "deliveries": [
            {k: d[k] for k in ("deliveryId", "recipeId", "integrationId", "integrationType")} for d in deliveries
        ],
    }


def orders_waiting_for(recipe_id: str) -> set[str]:
    """The orders whose link to `recipe_id` waits in the join for the recipe to arrive.

    Reads this worker's copy: call it on the owner of the recipe's partition."""
    return {str(link.get("orderId")) for link in waiting_links.entries(recipe_id) if link.get("orderId")}

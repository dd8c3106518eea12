"""The operators' view: each order's (and raw-feed recipe's) deliveries, and each tenant's recent list.

Both tables are keyed by the raw bytes of their topic's message key (`key_serializer="raw"`), so
that Faust's router, which hashes a table key with the producer's partitioner, finds the worker
that owns the row: `order-view` is keyed like delivery-results (orderId, or recipeId for the raw
feed), `tenant-activity` by tenant.

The view is folded where its data already is: an order event by the orders stage, a link's recipe by
the join, a command and its result by the delivery stage, a trigger's plan by the triggers stage,
each in its own partition (the row's key sits on the partition of the record being handled). The
rows change in memory and are written once per barrier (`barrier.py`); each changed order's line goes
to its tenant's list at the same barrier, once. Only what is decided outside the row's partition (a
link that expired while its recipe never came, decided in the recipe's partition; a retry started by
the sweep) travels through `order-activity` to the row's owner.

    orders stage, join, delivery stage, triggers ──► order-view rows ──(barrier)──► tenant-activity
    order-activity (what happened elsewhere) ──► keep_order_views ──► order-view rows
    tenant-activity (a round's lines, one record per tenant) ──► keep_tenant_activity ──► tenant rows
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import faust
import orjson
from faust.types import StreamT

from service.app import app, catalog, topic
from service.contracts import OrderLink, Trigger
from service.planning.order_view import (
    fold_order,
    fold_recipe_order,
    fold_result,
    fold_trigger,
    remember,
    tenant_entry,
    tenant_lines,
)
from service.planning.routing import route
from service.planning.trigger_selection import planned_deliveries, select_links
from service.streams.machinery.barrier import barrier, fetched_in_this_generation, handle_held
from service.streams.machinery.partitions import handled_here
from service.streams.machinery.publish import publish
from service.streams.machinery.row_cache import RowCache
from service.streams.state import waiting_links
from service.streams.state.live_views import all_integrations

log = logging.getLogger(__name__)

Kind = Literal["order", "recipe"]
Fold = Callable[[dict[str, Any] | None], dict[str, Any]]

order_activity_topic = topic("order-activity")
tenant_activity_topic = topic("tenant-activity")

RAW_KEYS: faust.Schema = faust.Schema(key_serializer="raw", value_serializer="json")


def raw_keyed_table(name: str) -> Any:
    return app.Table(name, partitions=catalog[f"table:{name}"].partitions, schema=RAW_KEYS)


# orderId (or raw-feed recipeId) -> service.planning.order_view document
order_view_table = raw_keyed_table("order-view")
# tenant -> {"orders": [...], "recipes": [...]}, newest first
tenant_table = raw_keyed_table("tenant-activity")
VIEW_PARTITIONS = catalog["table:order-view"].partitions

# A worker may serve many orders and tenants: the decoded rows kept are bounded (rows waiting to be
# written aside).
VIEW_ROWS_CACHED = 1024
TENANT_ROWS_CACHED = 64
ENTRIES_PER_RECORD = 200  # a line is a few hundred bytes
view_rows: RowCache[dict[str, Any]] = barrier.cache(
    RowCache(order_view_table, cached=VIEW_ROWS_CACHED, is_current=fetched_in_this_generation)
)
tenant_rows: RowCache[dict[str, Any]] = barrier.cache(
    RowCache(tenant_table, cached=TENANT_ROWS_CACHED, is_current=fetched_in_this_generation)
)
# Rows changed since the last barrier whose line in the tenant's list may have changed, and as what.
_to_list: dict[str, Kind] = {}


def fold_here(key: str, fold: Fold, kind: Kind | None) -> bool:
    """Fold into `key`'s row when the record being handled sits on the row's partition; False when it
    does not (the caller sends it to the owner through order-activity). `kind`: the row's line in its
    tenant's list is brought up to date at the barrier (None: the change is not listed)."""
    event = handled_here(key, VIEW_PARTITIONS)
    if event is None:
        return False
    view_rows.put(key, fold(view_rows.get(key)), event)
    if kind is not None:
        _to_list[key] = kind
    return True


async def fold_result_into_view(key: str, result: dict[str, Any]) -> None:
    """A delivery result into its order's (or raw-feed recipe's) row, here or at the row's owner."""
    if not fold_here(key, lambda doc: fold_result(doc, result), "order" if result.get("orderId") else "recipe"):
        await publish(order_activity_topic, [(key, {"activity": "result", "result": result})])


@barrier.before_write
async def list_changed_rows() -> None:
    """Each changed row's line goes to its tenant's list when it changed; the line last sent is kept
    in the row to know. Run by the barrier before the rows are written, so a row never says a line
    was listed before the broker has it."""
    if not _to_list:
        return
    integrations = await all_integrations()
    entries = []
    # No await from reading a row to replacing it: a fold in between would be overwritten.
    for key, kind in list(_to_list.items()):
        del _to_list[key]
        doc = view_rows.changed_row(key)
        if doc is None:
            continue  # its partition left with the rebalance
        order = doc.get("order") or {}
        tenant = str(order.get("tenant") or "")
        expects = bool(tenant) and bool(route(order.get("lastEventType", ""), tenant, integrations))
        entry = tenant_entry(doc, kind, key, expects)
        listed = dict(doc.get("listed") or {})
        if entry is None or entry == listed.get(kind) or not entry.get("tenant"):
            continue
        view_rows.replace(key, {**doc, "listed": {**listed, kind: entry}})
        entries.append(entry)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_tenant.setdefault(str(entry["tenant"]), []).append(entry)
    # One record per tenant per round (in chunks that stay far below the broker's record limit): a
    # record per changed line was about a sixth of the records an order cost.
    for tenant, lines in by_tenant.items():
        for start in range(0, len(lines), ENTRIES_PER_RECORD):
            await barrier.send(tenant_activity_topic, tenant, {"entries": lines[start : start + ENTRIES_PER_RECORD]})


@app.agent(order_activity_topic)
async def keep_order_views(stream: StreamT[Any]) -> None:
    """What was decided outside a row's partition, folded by the row's owner. (Older releases sent
    every order event and trigger plan this way: their records are folded the same.)"""
    await handle_held(stream, fold_activity)


async def fold_activity(event: Any) -> None:
    key = event.key.decode()
    doc = orjson.loads(event.value)
    activity = doc.get("activity")
    fold: Fold
    kind: Kind | None
    if activity == "order":
        fold, kind = (lambda d: fold_order(d, doc["order"])), "order"
    elif activity == "recipe-order":
        fold, kind = (lambda d: fold_recipe_order(d, doc["order"])), None
    elif activity == "trigger":
        plan = doc["plan"]
        fold, kind = (lambda d: fold_trigger(d, plan)), "order" if plan.get("orderId") else "recipe"
    else:
        result = doc["result"]
        fold, kind = (lambda d: fold_result(d, result)), "order" if result.get("orderId") else "recipe"
    if not fold_here(key, fold, kind):
        log.warning("a view record is on the wrong partition; left out", extra={"partition": event.message.partition})


@app.agent(tenant_activity_topic)
async def keep_tenant_activity(stream: Any) -> None:
    """Each entry folded into its tenant's row in memory; the rows written once per barrier."""
    await handle_held(stream, fold_tenant_entry)


async def fold_tenant_entry(event: Any) -> None:
    key = event.key.decode()
    tenant_rows.put(key, remember(tenant_rows.get(key), *tenant_lines(orjson.loads(event.value))), event)


async def plan_trigger(trigger: Trigger, order: dict[str, Any] | None, links: list[OrderLink]) -> list[OrderLink]:
    """A trigger's links for its mode, its plan recorded for the operators; none for a dry run.

    Runs in the trigger's partition, which is its target's partition of order-view (same key, same
    partition count, every producer hashing with murmur2)."""
    kind: Kind = "order" if order is not None else "recipe"
    key = order["orderId"] if order is not None else str(trigger.recipeId)
    doc = view_rows.get(key)
    chosen = select_links(links, trigger.mode, doc, kind, key)
    plan = trigger_plan(
        trigger, kind, key, planned_deliveries(trigger.triggerId, chosen, await all_integrations(), doc)
    )
    if trigger.dryRun:
        return []
    if not fold_here(key, lambda d: fold_trigger(d, plan), kind):
        await publish(order_activity_topic, [(key, {"activity": "trigger", "plan": plan})])
    return chosen


def trigger_plan(trigger: Trigger, kind: Kind, key: str, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
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

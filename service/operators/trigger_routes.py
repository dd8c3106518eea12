"""POST /v1/triggers (operate scope): run a tenant's integrations again for an order or a recipe.

The body is checked with the triggers topic's own contract; the worker that owns the trigger's
target plans it (what its mode selects, sent where) and publishes it, unless it is a dry run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from faust import web

from service.app import app, recipes_table, settings, triggers_topic
from service.contracts import OPERATOR_TRIGGER_MODE, TRIGGER_MODES, Trigger
from service.operators.answers import resolve_order_number
from service.operators.auth import with_scope
from service.operators.owners import on_owner
from service.operators.request_checks import Refused, json_object
from service.operators.triggers import trigger_document
from service.planning.links import trigger_links
from service.planning.order_view import own_deliveries
from service.planning.trigger_selection import planned_deliveries, select_links
from service.planning.view_keys import kind_of, view_key
from service.streams.stages.order_view import order_view_table
from service.streams.state.live_views import integrations_view
from service.validation import TRIGGER, Rejected, parse_event

log = logging.getLogger(__name__)

TRIGGER_FIELDS = {"tenant", "recipeId", "orderId", "orderNumber", "integrationId", "requestedBy", "mode", "dryRun"}


def trigger_request(raw: bytes) -> Trigger:
    """The POST body as a trigger (validated with the topic's own contract), or Refused (400)."""
    body = json_object(raw, TRIGGER_FIELDS, empty=b"null")
    mode = body.get("mode", OPERATOR_TRIGGER_MODE)
    if mode not in TRIGGER_MODES:
        raise Refused(400, f"mode must be one of {', '.join(TRIGGER_MODES)}")
    if not isinstance(body.get("tenant"), str):
        raise Refused(400, "tenant: required")
    doc = trigger_document(
        body["tenant"],
        body.get("recipeId"),
        body.get("orderId"),
        body.get("orderNumber"),
        body.get("integrationId"),
        str(body.get("requestedBy") or ""),
        datetime.now(UTC),
    )
    doc.update(mode=mode, dryRun=body.get("dryRun", False))
    key = str(doc.get(TRIGGER.key_field(doc), ""))
    checked = parse_event(
        TRIGGER, key.encode(), orjson.dumps(doc), schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(checked, Rejected):
        raise Refused(400, "; ".join(checked.reasons))
    return checked


async def run_trigger(trigger: Trigger) -> tuple[int, dict[str, Any]]:
    """On the owner of the trigger's target: what it sends where; published unless a dry run."""
    kind = kind_of(trigger.orderId)
    key = view_key(trigger.orderId, trigger.recipeId)
    doc = order_view_table.get(key)
    order = (doc or {}).get("order") if kind == "order" else None
    if kind == "order" and (order is None or order["tenant"] != trigger.tenant):
        raise Refused(404, f"tenant {trigger.tenant} has no order with orderId {key!r}")
    if kind == "recipe":
        stored = recipes_table.get(key)
        tenants = {e.get("tenant") for e in own_deliveries(doc or {}, "recipe", key)} | (
            {stored["tenant"]} if stored else set()
        )
        if trigger.tenant not in tenants:
            raise Refused(404, f"tenant {trigger.tenant} has no recipe with recipeId {key!r}")
    links = select_links(trigger_links(trigger, order), trigger.mode, doc, kind, key)
    planned = planned_deliveries(trigger.triggerId, links, integrations_view.values(), doc)
    common = {"mode": trigger.mode, "tenant": trigger.tenant, "orderId": trigger.orderId, "recipeId": trigger.recipeId}
    if trigger.dryRun:
        # A dry run's delivery ids would be those of a trigger that never exists.
        shown = [{k: v for k, v in p.items() if k != "deliveryId"} for p in planned]
        return 200, {"dryRun": True, **common, "deliveries": shown}
    if not planned:
        what = "no delivery failed" if trigger.mode == "failed-only" else "no enabled integration takes it"
        return 200, {"triggerId": None, **common, "deliveries": [], "reason": f"nothing to send: {what}"}
    value = trigger.model_dump(mode="json", exclude_none=True)
    await (await triggers_topic.send(key=key.encode(), value=orjson.dumps(value)))
    log.info(
        "trigger published",
        extra={"triggerId": trigger.triggerId, "tenant": trigger.tenant, "mode": trigger.mode, "planned": len(planned)},
    )
    poll = f"/v1/{kind}s/{key}/triggers/{trigger.triggerId}"
    return 202, {"triggerId": trigger.triggerId, **common, "expected": planned, "poll": poll}


@app.page("/v1/triggers")
class Triggers(web.View):
    """Run integrations again for an order (by id or number) or a recipe; see trigger_request."""

    async def post(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            trigger = trigger_request(await request.read())
            if trigger.orderNumber is not None:
                order_id = resolve_order_number(trigger.tenant, trigger.orderNumber)
                trigger = trigger.model_copy(update={"orderId": order_id, "orderNumber": None})
            if trigger.integrationId is not None:
                found = integrations_view.get(trigger.integrationId)
                if found is None or found.tenant != trigger.tenant:
                    raise Refused(404, f"tenant {trigger.tenant} has no integration {trigger.integrationId!r}")
            key = view_key(trigger.orderId, trigger.recipeId)

            async def local() -> web.Response:
                status, body = await run_trigger(trigger)
                headers = {"Location": body["poll"]} if status == 202 else None
                return self.json(body, status=status, headers=headers)

            return await on_owner(self, request, order_view_table, key, local)

        return await with_scope(self, request, "operate", handle)

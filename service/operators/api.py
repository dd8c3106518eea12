"""The operator HTTP API and the Review Recent Orders page, on the Faust web server.

Bearer tokens with two scopes: read (`OUTBOUND_API_READ_TOKEN`: look-ups) and operate
(`OUTBOUND_API_TOKEN`: look-ups and triggers). With neither configured the API answers 503 rather
than run open.

Any worker answers any look-up: a request for a key another worker owns is forwarded to it (one
hop, marked so that it is never forwarded again). The owner is found as Faust's router finds it,
from the partition the key's bytes hash to, so every table read here is keyed by the raw bytes of
the message key its rows were written under.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
from faust import web
from yarl import URL

from service.app import app, catalog, pending_links_table, recipes_table, settings, triggers_topic
from service.contracts import Trigger
from service.operators.triggers import trigger_document
from service.planning.links import order_number_key, trigger_links
from service.planning.order_view import (
    MODES,
    answer,
    failures_since,
    legacy_status,
    own_deliveries,
    planned_deliveries,
    recent_page,
    select_links,
    trigger_answer,
    undelivered_lines,
)
from service.planning.placement import service_partition
from service.secrets import redact_settings
from service.streams.configs import integrations_view, order_numbers_view
from service.streams.runtime import runtime
from service.streams.status import order_view_table, orders_waiting_for, tenant_table
from service.validation import TRIGGER, Rejected, parse_event

log = logging.getLogger(__name__)

Scope = Literal["read", "operate"]
FORWARDED = "X-Outbound-Forwarded"
ANSWERED_BY = "X-Outbound-Answered-By"
PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_PAGE_SIZE = 200


class Refused(Exception):
    """A request the API answers with an error: status and what is wrong, as JSON."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def refusal(view: web.View, status: int, error: str) -> web.Response:
    return view.json({"error": error}, status=status)


# --------------------------------------------------------------------------------------- tokens


def scope_of(request: web.Request) -> Scope:
    """The scope the request's bearer token grants; raises Refused (401) for no or a wrong token."""
    operate = settings.api_token.get_secret_value()
    read = settings.api_read_token.get_secret_value()
    if not operate and not read:
        raise Refused(503, "the operator API is disabled: set OUTBOUND_API_TOKEN and/or OUTBOUND_API_READ_TOKEN")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise Refused(401, "missing bearer token (Authorization: Bearer <token>)")
    given = header[7:].strip().encode()
    # Both comparisons always run, in constant time, so timing tells nothing about either token.
    is_operate = hmac.compare_digest(given, operate.encode()) and bool(operate)
    is_read = hmac.compare_digest(given, read.encode()) and bool(read)
    if is_operate:
        return "operate"
    if is_read:
        return "read"
    raise Refused(401, "the bearer token is not valid")


def require(request: web.Request, needed: Scope) -> Scope:
    scope = scope_of(request)
    if needed == "operate" and scope != "operate":
        raise Refused(403, "this token may only look things up; triggering needs the operate token")
    return scope


Handler = Callable[[], Awaitable[web.Response]]


async def guarded(view: web.View, request: web.Request, needed: Scope, handle: Handler) -> web.Response:
    try:
        require(request, needed)
        return await handle()
    except Refused as exc:
        return refusal(view, exc.status, exc.error)


# --------------------------------------------------------------------------------------- routing


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


def owner_of(changelog_topic: str, key: str) -> URL | None:
    """The worker that owns `key`'s partition of a table (None: this one).

    The partition is computed as every producer here computes it (murmur2 of the key's bytes), from
    the partition count in the catalog: the producer may not know a changelog it never wrote to."""
    partition = service_partition(key.encode(), catalog_partitions(changelog_topic))
    for url, topics in app.assignor.table_metadata(changelog_topic).items():
        if partition in topics.get(changelog_topic, ()):
            owner = URL(str(url))
            return None if _ident(owner) == _ident(URL(str(app.conf.canonical_url))) else owner
    raise Refused(503, "the workers are sharing out partitions; try again in a moment")


def catalog_partitions(changelog_topic: str) -> int:
    return next(spec.partitions for spec in catalog if spec.name == changelog_topic)


def changelog(table: Any) -> str:
    return str(table.changelog_topic.get_topic_name())


async def on_owner(view: web.View, request: web.Request, table: Any, key: str, local: Handler) -> web.Response:
    """Answer here if this worker owns `key` in `table`, else forward the request to the owner."""
    owner = owner_of(changelog(table), key)
    if owner is None:
        response = await local()
        # Which worker answered: for whoever debugs routing (and the tests that prove it).
        response.headers[ANSWERED_BY] = str(app.conf.canonical_url)
        return response
    if request.headers.get(FORWARDED):
        raise Refused(503, "the partition moved while the request was forwarded; try again")
    return await forward(view, request, owner.with_path(request.url.path).with_query(request.url.query))


async def forward(view: web.View, request: web.Request, url: URL) -> web.Response:
    headers = {FORWARDED: "1"}
    for name in ("Authorization", "Content-Type"):
        if name in request.headers:
            headers[name] = request.headers[name]
    body = await request.read() if request.method == "POST" else None
    try:
        async with app.http_client.request(request.method, url, headers=headers, data=body) as response:
            kept = {name: response.headers[name] for name in ("Location", ANSWERED_BY) if name in response.headers}
            return view.bytes(
                await response.read(),
                content_type=response.content_type or "application/json",
                status=response.status,
                headers=kept,
            )
    except OSError as exc:
        log.warning("forwarding to the owning worker failed", extra={"to": str(url.origin()), "error": str(exc)})
        raise Refused(503, "the worker that holds this key did not answer; try again") from exc


async def ask_owner(request: web.Request, url: URL) -> Any:
    """A JSON answer from another worker's API, with the caller's credentials."""
    headers = {FORWARDED: "1", "Authorization": request.headers.get("Authorization", "")}
    try:
        async with app.http_client.get(url, headers=headers) as response:
            if response.status != 200:
                raise Refused(503, f"the worker at {url.origin()} answered {response.status}; try again")
            return await response.json()
    except OSError as exc:
        raise Refused(503, f"the worker at {url.origin()} did not answer; try again") from exc


async def waiting_for_recipe(request: web.Request, doc: dict[str, Any] | None, order_id: str) -> set[str]:
    """Recipes of the order whose link waits for its recipe in the join (asked of their owners)."""
    waiting = set()
    for recipe_id in undelivered_lines(doc or {}, order_id):
        owner = owner_of(changelog(pending_links_table), recipe_id)
        if owner is None:
            orders = orders_waiting_for(recipe_id)
        else:
            found = await ask_owner(request, owner.with_path(f"/v1/internal/pending-links/{recipe_id}"))
            orders = set(found["orderIds"])
        if order_id in orders:
            waiting.add(recipe_id)
    return waiting


# --------------------------------------------------------------------------------------- answers


async def order_answer(request: web.Request, order_id: str) -> dict[str, Any]:
    doc = order_view_table.get(order_id)
    body = answer(doc, "order", order_id, await waiting_for_recipe(request, doc, order_id))
    if body is None:
        raise Refused(404, f"no order with orderId {order_id!r} is known")
    return body


def recipe_answer(recipe_id: str) -> dict[str, Any]:
    body = answer(order_view_table.get(recipe_id), "recipe", recipe_id, set())
    if body is None:
        stored = recipes_table.get(recipe_id)
        if stored is None:
            raise Refused(404, f"no recipe with recipeId {recipe_id!r} is known")
        body = {"kind": "recipe", "recipeId": recipe_id, "tenant": stored["tenant"], "summary": "none"}
        body.update(integrations=[], orders=[], triggers=[])
    return body


def resolve_order_number(tenant: str, order_number: str) -> str:
    order_id = order_numbers_view.get(order_number_key(tenant, order_number))
    if order_id is None:
        raise Refused(404, f"tenant {tenant} has no order number {order_number!r}")
    return order_id


def checked_tenant(tenant: str) -> str:
    if not TENANT.match(tenant):
        raise Refused(400, f"{tenant!r} is not a tenant name (lower-case letters, digits and dashes)")
    return tenant


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(400, f"query parameter {name} must be a whole number from {low} to {high}")
    return int(raw)


def bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise Refused(400, f"query parameter {name} must be true or false")
    return raw in ("true", "1")


def listed(entry: dict[str, Any]) -> dict[str, Any]:
    """A line of a tenant's list as the API shows it."""
    key = "orderId" if entry["kind"] == "order" else "recipeId"
    return {
        "kind": entry["kind"],
        key: entry["id"],
        "orderNumber": entry.get("orderNumber"),
        "placedAt": entry.get("occurredAt"),
        "updatedAt": entry.get("updatedAt"),
        "summary": entry["summary"],
        "integrations": [{"integrationId": i, "state": s} for i, s in (entry.get("integrations") or {}).items()],
    }


# --------------------------------------------------------------------------------------- routes


@app.page("/v1/whoami")
class WhoAmI(web.View):
    """The scope of the caller's token (the page signs in with it)."""

    async def get(self, request: web.Request) -> web.Response:
        try:
            return self.json({"scope": scope_of(request)})
        except Refused as exc:
            return refusal(self, exc.status, exc.error)


@app.page("/v1/integrations")
class Integrations(web.View):
    """The integrations this worker routes to, secrets redacted; `?tenant=` for one tenant's."""

    async def get(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            tenant = request.query.get("tenant")
            items: list[dict[str, Any]] = [
                {**config.model_dump(mode="json"), "settings": redact_settings(config.settings, runtime().box)}
                for config in integrations_view.values()
                if tenant is None or config.tenant == tenant
            ]
            return self.json({"integrations": sorted(items, key=lambda d: d["id"])})

        return await guarded(self, request, "read", handle)


@app.page("/v1/orders/{order_id}")
class Order(web.View):
    async def get(self, request: web.Request, order_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json(await order_answer(request, order_id))

        return await guarded(self, request, "read", lambda: on_owner(self, request, order_view_table, order_id, local))


@app.page("/v1/tenants/{tenant}/order-numbers/{order_number}")
class OrderByNumber(web.View):
    async def get(self, request: web.Request, tenant: str, order_number: str) -> web.Response:
        async def handle() -> web.Response:
            order_id = resolve_order_number(checked_tenant(tenant), order_number)

            async def local() -> web.Response:
                return self.json(await order_answer(request, order_id))

            return await on_owner(self, request, order_view_table, order_id, local)

        return await guarded(self, request, "read", handle)


@app.page("/v1/recipes/{recipe_id}")
class Recipe(web.View):
    """A recipe's raw-feed deliveries and the orders that have it."""

    async def get(self, request: web.Request, recipe_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json(recipe_answer(recipe_id))

        return await guarded(self, request, "read", lambda: on_owner(self, request, order_view_table, recipe_id, local))


@app.page("/v1/{kind}/{ident}/triggers/{trigger_id}")
class TriggerStatus(web.View):
    """A trigger as planned (the deliveries it caused, each with its state), or `planned: false`."""

    async def get(self, request: web.Request, kind: str, ident: str, trigger_id: str) -> web.Response:
        async def local() -> web.Response:
            found = trigger_answer(order_view_table.get(ident), trigger_id)
            return self.json(found or {"triggerId": trigger_id, "planned": False, "deliveries": []})

        async def handle() -> web.Response:
            if kind not in ("orders", "recipes"):
                raise Refused(404, "triggers are found under /v1/orders/{orderId} or /v1/recipes/{recipeId}")
            return await on_owner(self, request, order_view_table, ident, local)

        return await guarded(self, request, "read", handle)


@app.page("/v1/tenants/{tenant}/orders")
class RecentOrders(web.View):
    """A tenant's recent orders, newest first, paged; `?failed=true` for the failed ones only."""

    async def get(self, request: web.Request, tenant: str) -> web.Response:
        async def local() -> web.Response:
            got = recent_page(
                tenant_table.get(tenant),
                failed_only=bool_param(request, "failed"),
                page=int_param(request, "page", 1, 1, 10_000),
                size=int_param(request, "pageSize", 50, 1, MAX_PAGE_SIZE),
            )
            return self.json({"tenant": tenant, **got, "items": [listed(e) for e in got["items"]]})

        async def handle() -> web.Response:
            checked_tenant(tenant)
            int_param(request, "page", 1, 1, 10_000)
            int_param(request, "pageSize", 50, 1, MAX_PAGE_SIZE)
            bool_param(request, "failed")
            return await on_owner(self, request, tenant_table, tenant, local)

        return await guarded(self, request, "read", handle)


@app.page("/v1/tenants/{tenant}/failures")
class RecentFailures(web.View):
    """Orders and raw-feed recipes of a tenant whose deliveries failed, active in the last `days`."""

    async def get(self, request: web.Request, tenant: str) -> web.Response:
        async def local() -> web.Response:
            days = int_param(request, "days", 3, 1, 90)
            since = datetime.now(UTC) - timedelta(days=days)
            items = failures_since(tenant_table.get(tenant), since)
            return self.json({"tenant": tenant, "days": days, "items": [listed(e) for e in items]})

        async def handle() -> web.Response:
            checked_tenant(tenant)
            int_param(request, "days", 3, 1, 90)
            return await on_owner(self, request, tenant_table, tenant, local)

        return await guarded(self, request, "read", handle)


@app.page("/v1/status/{kind}/{ident}")
class DeliveryStatus(web.View):
    """Each (recipe, integration)'s latest delivery in one line (the first status API, kept)."""

    async def get(self, request: web.Request, kind: str, ident: str) -> web.Response:
        async def local() -> web.Response:
            entries = legacy_status(order_view_table.get(ident), "order" if kind == "orders" else "recipe", ident)
            if not entries:
                raise Refused(404, f"no deliveries recorded for {kind[:-1]} {ident}")
            return self.json({kind[:-1]: ident, "deliveries": entries})

        async def handle() -> web.Response:
            if kind not in ("orders", "recipes"):
                raise Refused(404, "kind must be orders or recipes")
            return await on_owner(self, request, order_view_table, ident, local)

        return await guarded(self, request, "read", handle)


@app.page("/v1/internal/pending-links/{recipe_id}")
class PendingLinks(web.View):
    """Worker to worker: the orders whose link to this recipe waits for it (asked of its owner)."""

    async def get(self, request: web.Request, recipe_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json({"recipeId": recipe_id, "orderIds": sorted(orders_waiting_for(recipe_id))})

        return await guarded(
            self, request, "read", lambda: on_owner(self, request, pending_links_table, recipe_id, local)
        )


# --------------------------------------------------------------------------------------- triggers


def trigger_request(raw: bytes) -> Trigger:
    """The POST body as a trigger (validated with the topic's own contract), or Refused (400)."""
    try:
        body = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"the body is not JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object")
    known = {"tenant", "recipeId", "orderId", "orderNumber", "integrationId", "requestedBy", "mode", "dryRun"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise Refused(400, f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    if body.get("mode", "failed-only") not in MODES:
        raise Refused(400, f"mode must be one of {', '.join(MODES)}")
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
    doc.update(mode=body.get("mode", "failed-only"), dryRun=body.get("dryRun", False))
    key = str(doc.get(TRIGGER.key_field(doc), ""))
    checked = parse_event(
        TRIGGER, key.encode(), orjson.dumps(doc), schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes
    )
    if isinstance(checked, Rejected):
        raise Refused(400, "; ".join(checked.reasons))
    return checked


async def run_trigger(trigger: Trigger) -> tuple[int, dict[str, Any]]:
    """On the owner of the trigger's target: what it sends where; published unless a dry run."""
    kind: Literal["order", "recipe"] = "order" if trigger.orderId else "recipe"
    key = trigger.orderId or str(trigger.recipeId)
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
            key = trigger.orderId or str(trigger.recipeId)

            async def local() -> web.Response:
                status, body = await run_trigger(trigger)
                headers = {"Location": body["poll"]} if status == 202 else None
                return self.json(body, status=status, headers=headers)

            return await on_owner(self, request, order_view_table, key, local)

        return await guarded(self, request, "operate", handle)


# --------------------------------------------------------------------------------------- the page


def page_file(name: str) -> tuple[bytes, str] | None:
    path = (PAGE_DIR / name).resolve()
    if path.parent != PAGE_DIR or path.suffix not in PAGE_TYPES or not path.is_file():
        return None
    return path.read_bytes(), PAGE_TYPES[path.suffix]


# The page loads nothing from elsewhere, and the browser is told to refuse if it ever tried.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@app.page("/ops")
class PageRedirect(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.text("", status=308, headers={"Location": "/ops/"})


@app.page("/ops/")
class Page(web.View):
    """Review Recent Orders (static: the page talks to the API with the operator's token)."""

    async def get(self, request: web.Request) -> web.Response:
        found = page_file("index.html")
        assert found is not None
        return self.bytes(found[0], content_type=found[1], headers=dict(PAGE_HEADERS))


@app.page("/ops/{name}")
class PageAsset(web.View):
    async def get(self, request: web.Request, name: str) -> web.Response:
        found = page_file(name)
        if found is None:
            return refusal(self, 404, f"no page file {name!r}")
        return self.bytes(found[0], content_type=found[1], headers=dict(PAGE_HEADERS))

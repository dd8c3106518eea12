"""The operator API's look-ups (read scope): integrations, an order or recipe, a trigger's progress,
a tenant's recent orders and failures, and the orders waiting for a recipe (worker to worker).

Each is answered by the worker that owns its key (`owners.on_owner`), whichever worker was asked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from faust import web

from service.app import app, pending_links_table
from service.operators.answers import listed, order_answer, recipe_answer, resolve_order_number
from service.operators.auth import scope_of, with_scope
from service.operators.owners import on_owner
from service.operators.request_checks import Refused, bool_param, checked_tenant, int_param, refusal
from service.planning.view_answers import failures_since, legacy_status, recent_page, trigger_answer
from service.secrets import redact_settings
from service.streams.machinery.runtime import runtime
from service.streams.stages.order_view import order_view_table, orders_waiting_for, tenant_table
from service.streams.state.live_views import integrations_view

MAX_PAGE_SIZE = 200


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

        return await with_scope(self, request, "read", handle)


@app.page("/v1/orders/{order_id}")
class Order(web.View):
    async def get(self, request: web.Request, order_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json(await order_answer(request, order_id))

        return await with_scope(
            self, request, "read", lambda: on_owner(self, request, order_view_table, order_id, local)
        )


@app.page("/v1/tenants/{tenant}/order-numbers/{order_number}")
class OrderByNumber(web.View):
    async def get(self, request: web.Request, tenant: str, order_number: str) -> web.Response:
        async def handle() -> web.Response:
            order_id = resolve_order_number(checked_tenant(tenant), order_number)

            async def local() -> web.Response:
                return self.json(await order_answer(request, order_id))

            return await on_owner(self, request, order_view_table, order_id, local)

        return await with_scope(self, request, "read", handle)


@app.page("/v1/recipes/{recipe_id}")
class Recipe(web.View):
    """A recipe's raw-feed deliveries and the orders that have it."""

    async def get(self, request: web.Request, recipe_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json(recipe_answer(recipe_id))

        return await with_scope(
            self, request, "read", lambda: on_owner(self, request, order_view_table, recipe_id, local)
        )


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

        return await with_scope(self, request, "read", handle)


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

        return await with_scope(self, request, "read", handle)


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

        return await with_scope(self, request, "read", handle)


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

        return await with_scope(self, request, "read", handle)


@app.page("/v1/internal/pending-links/{recipe_id}")
class PendingLinks(web.View):
    """Worker to worker: the orders whose link to this recipe waits for it (asked of its owner)."""

    async def get(self, request: web.Request, recipe_id: str) -> web.Response:
        async def local() -> web.Response:
            return self.json({"recipeId": recipe_id, "orderIds": sorted(orders_waiting_for(recipe_id))})

        return await with_scope(
            self, request, "read", lambda: on_owner(self, request, pending_links_table, recipe_id, local)
        )

"""The operator HTTP API on the Faust web server: readiness, and what this worker knows.

Every route but readiness needs `Authorization: Bearer <OUTBOUND_API_TOKEN>`; with no token
configured the API answers 503 rather than run open.
"""

from __future__ import annotations

import hmac
from typing import Any

from faust import web

from service.app import app, settings, status_table
from service.secrets import redact_settings
from service.streams.configs import integrations_view, order_numbers_view


def _refusal(view: web.View, status: int, error: str) -> web.Response:
    return view.json({"error": error}, status=status)


def authorized(view: web.View, request: web.Request) -> web.Response | None:
    """None when the request may go on, else the response that refuses it."""
    token = settings.api_token.get_secret_value()
    if not token:
        return _refusal(view, 503, "the operator API is disabled: OUTBOUND_API_TOKEN is not set")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return _refusal(view, 401, "missing or wrong bearer token")
    return None


@app.page("/health/ready")
class Readiness(web.View):
    """Ready once tables have recovered and no rebalance is under way."""

    async def get(self, request: web.Request) -> web.Response:
        flags = (
            ("recovering", app.in_recovery),
            ("rebalancing", app.rebalancing),
            ("loading integrations", not integrations_view.caught_up),
            ("loading the order index", not order_numbers_view.caught_up),
        )
        busy = [name for name, flag in flags if flag]
        return self.json({"ready": not busy, "busy": busy}, status=503 if busy else 200)


@app.page("/v1/integrations")
class Integrations(web.View):
    """The integrations this worker routes to (its copy of the global table), secrets redacted."""

    async def get(self, request: web.Request) -> web.Response:
        refused = authorized(self, request)
        if refused is not None:
            return refused
        items: list[dict[str, Any]] = [
            {**config.model_dump(mode="json"), "settings": redact_settings(config.settings)}
            for config in integrations_view.values()
        ]
        return self.json({"integrations": sorted(items, key=lambda d: d["id"])})


@app.page("/v1/status/{kind}/{ident}")
class DeliveryStatus(web.View):
    """Every integration's latest delivery status for an order (kind `orders`) or raw-feed recipe (`recipes`)."""

    async def get(self, request: web.Request, kind: str, ident: str) -> web.Response:
        refused = authorized(self, request)
        if refused is not None:
            return refused
        if kind not in ("orders", "recipes"):
            return _refusal(self, 404, "kind must be orders or recipes")
        entries = status_table.get(f"{kind[:-1]}:{ident}")
        if entries is None:
            return _refusal(self, 404, f"no deliveries recorded for {kind[:-1]} {ident}")
        return self.json({kind[:-1]: ident, "deliveries": sorted(entries.values(), key=lambda e: e["integrationId"])})

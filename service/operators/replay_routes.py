"""POST /v1/replays and POST /v1/redrives (operate scope): the CLI's replay and redrive over HTTP.

The worker that answers reads the window with a consumer of its own and publishes; the answer
comes when it is done, with the figures the CLI prints.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from faust import web

from service import metrics
from service.app import app, catalog, settings
from service.operators.auth import with_scope
from service.operators.replay import redrive, replay
from service.operators.request_checks import Refused, json_object
from service.planning.replay import BadRequest, RedriveFilter, ReplayFilter, Window, parse_when
from service.streams.state.live_views import integrations_view

log = logging.getLogger(__name__)

REPLAY_FIELDS = {
    "topic",
    "since",
    "until",
    "fromOffset",
    "toOffset",
    "partition",
    "tenant",
    "recipeId",
    "orderId",
    "eventType",
    "toIntegration",
    "dryRun",
}
REDRIVE_FIELDS = {"tenant", "integrationId", "since", "until", "errorContains", "dryRun"}


def json_body(raw: bytes, allowed: set[str]) -> dict[str, Any]:
    """The body as a JSON object of allowed fields, each of its kind (see field_kind), or Refused (400)."""
    body = json_object(raw, allowed)
    for name, value in body.items():
        kind = field_kind(name)
        if (value is not None and not isinstance(value, FIELD_TYPES[kind])) or (
            kind != "boolean" and isinstance(value, bool)
        ):
            raise Refused(400, f"{name} must be a {kind}")
    return body


FIELD_TYPES: dict[str, type] = {"boolean": bool, "whole number": int, "string": str}


def field_kind(name: str) -> str:
    return "boolean" if name == "dryRun" else "whole number" if "Offset" in name or name == "partition" else "string"


def when(body: dict[str, Any], name: str) -> datetime | None:
    return parse_when(body[name], datetime.now(UTC)) if body.get(name) is not None else None


def replay_request(body: dict[str, Any]) -> tuple[Window, ReplayFilter]:
    if body.get("topic") is None:
        raise Refused(400, "topic: required (recipes or orders)")
    try:
        window = Window(
            when(body, "since"),
            when(body, "until"),
            body.get("fromOffset"),
            body.get("toOffset"),
            body.get("partition"),
        ).check()
        chosen = ReplayFilter(
            body["topic"], body.get("tenant"), body.get("recipeId"), body.get("orderId"), body.get("eventType")
        ).check()
    except BadRequest as exc:
        raise Refused(400, str(exc)) from exc
    integration = body.get("toIntegration")
    if integration is not None and integrations_view.get(integration) is None:
        raise Refused(404, f"no integration {integration!r}")
    return window, chosen


def redrive_request(body: dict[str, Any]) -> RedriveFilter:
    try:
        chosen = RedriveFilter(
            body.get("tenant"),
            body.get("integrationId"),
            when(body, "since"),
            when(body, "until"),
            body.get("errorContains"),
        )
    except BadRequest as exc:
        raise Refused(400, str(exc)) from exc
    if chosen.since is not None and chosen.until is not None and chosen.until <= chosen.since:
        raise Refused(400, "until must be later than since")
    return chosen


@app.page("/v1/replays")
class Replays(web.View):
    """Body: {"topic", "since"/"until" or "fromOffset"/"toOffset" (and "partition"), filters "tenant",
    "recipeId", "orderId", "eventType", "toIntegration", "dryRun"}; answers the figures."""

    async def post(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            body = json_body(await request.read(), REPLAY_FIELDS)
            window, chosen = replay_request(body)
            try:
                tally = await replay(
                    settings,
                    catalog,
                    window,
                    chosen,
                    to_integration=body.get("toIntegration"),
                    dry_run=bool(body.get("dryRun")),
                )
            except LookupError as exc:
                raise Refused(400, str(exc)) from exc
            metrics.replayed.labels("replay").inc(tally.published)
            log.info("replay run", extra={"replay": tally.id, "topic": chosen.topic, **tally.as_dict()})
            return self.json({"topic": chosen.topic, **tally.as_dict()})

        return await with_scope(self, request, "operate", handle)


@app.page("/v1/redrives")
class Redrives(web.View):
    """Body: {"tenant", "integrationId", "since", "until", "errorContains", "dryRun"}, all optional."""

    async def post(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            body = json_body(await request.read(), REDRIVE_FIELDS)
            tally = await redrive(settings, catalog, redrive_request(body), dry_run=bool(body.get("dryRun")))
            metrics.replayed.labels("redrive").inc(tally.published)
            log.info("redrive run", extra={"redrive": tally.id, **tally.as_dict()})
            return self.json(tally.as_dict())

        return await with_scope(self, request, "operate", handle)

"""POST /v1/integrations/{id}/enable (operate scope): the CLI's `integrations enable` over HTTP.

After the service turned an integration off, the answer names the re-drive that delivers what was
kept while it was off (the page offers it as a button: POST /v1/redrives with that body).
"""

from __future__ import annotations

import logging

import orjson
from faust import web

from service.app import app, catalog, settings
from service.operators.auth import access, with_scope
from service.operators.integration_store import publish_integration
from service.operators.request_checks import Refused, json_object
from service.planning.health import enabled_config, kept_while_disabled
from service.streams.state.live_views import latest_integration

log = logging.getLogger(__name__)


@app.page("/v1/integrations/{integration_id}/enable")
class EnableIntegration(web.View):
    async def post(self, request: web.Request, integration_id: str) -> web.Response:
        async def handle() -> web.Response:
            who = access(request)
            json_object(await request.read(), set())
            integration = await latest_integration(integration_id)
            if integration is None or not who.sees(integration.tenant):
                raise Refused(404, f"no integration {integration_id!r}")
            kept = integration.disabled if kept_while_disabled(integration) else None
            doc = enabled_config(integration.model_dump(mode="json", exclude_none=True))
            await publish_integration(settings, catalog, integration_id, orjson.dumps(doc))
            log.info("integration enabled", extra={"integrationId": integration_id, "tenant": integration.tenant})
            answer: dict[str, object] = {"integrationId": integration_id, "enabled": True, "wasDisabled": None}
            if kept is not None:
                was = kept.model_dump(mode="json")
                answer["wasDisabled"] = was
                since = was.get("failingSince") or was["at"]
                answer["redrive"] = {"tenant": integration.tenant, "integrationId": integration_id, "since": since}
            return self.json(answer)

        return await with_scope(self, request, "operate", handle)

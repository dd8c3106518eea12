"""Putting many integrations and delivery commands at once, as the worker would receive them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from service.contracts import Integration
from service.operators.integration_store import sealed
from service.planning.view_keys import view_key
from service.secrets import SecretBox
from tests.deployments import Deployment, Worker
from tests.events import unique
from tests.waiting import wait_for


async def publish_integrations(deployment: Deployment, workers: list[Worker], docs: list[dict[str, Any]]) -> None:
    """Sealed as `integrations put` seals them (one produce call instead of a CLI run each), then
    waited for until every worker routes with them."""
    box = SecretBox(deployment.secret_key)
    items = [(d["id"].encode(), sealed(Integration.model_validate(d), box)) for d in docs]
    await deployment.produce("integrations", items)
    wanted = {d["id"] for d in docs}
    for worker in workers:

        async def known(worker: Worker = worker) -> bool:
            async with worker.api() as api:
                listed = (await api.get("/v1/integrations")).json()["integrations"]
            return wanted <= {i["id"] for i in listed}

        await wait_for(known, 60, f"worker {worker.name} to know {len(wanted)} integrations")


def command(config: dict[str, Any], files: list[dict[str, str]] | None = None, **fields: Any) -> dict[str, Any]:
    """A raw-feed delivery command for one integration, as the join would emit it."""
    recipe_id = fields.pop("recipeId", unique("r-"))
    return {
        "deliveryId": str(uuid.uuid4()),
        "integrationId": config["id"],
        "integrationType": config["type"],
        "tenant": config["tenant"],
        "eventType": "recipe.created",
        "eventId": str(uuid.uuid4()),
        "recipeId": recipe_id,
        "files": files or [],
        "createdAt": datetime.now(UTC).isoformat(),
        **fields,
    }


async def send_commands(deployment: Deployment, commands: list[dict[str, Any]]) -> None:
    await deployment.produce(
        "deliveries", [(view_key(c.get("orderId"), c["recipeId"]).encode(), orjson.dumps(c)) for c in commands]
    )


async def first_results(deployment: Deployment, commands: list[dict[str, Any]], timeout: float = 120) -> dict[str, Any]:
    """Each command's first attempt's result, by delivery id."""
    wanted = {c["deliveryId"] for c in commands}

    async def all_there() -> dict[str, Any] | None:
        found = {
            d["deliveryId"]: d
            for d in await deployment.read_json("delivery-results", lambda d: d["deliveryId"] in wanted)
            if d["attempt"] == 1
        }
        return found if set(found) == wanted else None

    return await wait_for(all_there, timeout, f"results of {len(wanted)} deliveries")

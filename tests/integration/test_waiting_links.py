"""An order may wait for its recipe, but not forever: at the limit, someone is told."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.catalog import changelog_name
from tests.deployments import Worker, configure, new_deployment
from tests.events import order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def waiting_state(deployment, recipe_id: str, gone: bool = False) -> dict[str, Any] | bool:
    """The join's pending-links entries about `recipe_id`, as its changelog has them now (latest value
    per key, tombstones dropped): the recipe's list of link keys and each link's own entry. With
    `gone`, True once every such key has been removed."""
    latest: dict[str, Any] = {}
    # The deployment's app id is its topic prefix + "app", so the changelog is read as "app-...".
    for record in await deployment.read(changelog_name("app", "pending-links")):
        key = orjson.loads(record.key)
        if recipe_id in key:
            latest[key] = orjson.loads(record.value) if record.value is not None else None
    if gone:
        return bool(latest) and all(value is None for value in latest.values())
    live = {key: value for key, value in latest.items() if value is not None}
    return live if len(live.get(recipe_id) or []) == 3 and len(live) == 4 else {}


async def test_an_order_whose_recipe_never_arrives_expires_and_tells_the_failure_list(kafka, destinations):
    deployment = new_deployment(
        kafka,
        **destinations.worker_env(),
        OUTBOUND_PENDING_LINK_TTL_SECONDS="4",
        OUTBOUND_PENDING_LINK_CHECK_SECONDS="1",
    )
    tenant = unique("orphan")
    worker = await Worker(deployment, "orphan").start().ready()
    try:
        hook = hook_integration(destinations, tenant)
        await configure(deployment, [worker], hook)
        never = recipe_event(tenant)  # never published
        late = recipe_event(tenant)
        waiting = order_event(tenant, [never["recipeId"]])
        await deployment.produce_json("orders", [waiting], "orderId")
        [result] = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 1, 60)
        assert (result["outcome"], result["final"]) == ("failed", True)
        assert result["error"] == "expired: the recipe never arrived" and result["orderId"] == waiting["orderId"]
        inbox = destinations.smtp.inbox
        await wait_for(lambda: inbox.to(f"alerts-{tenant}@ops.example"), 60, "the failure notification")
        [mail] = inbox.to(f"alerts-{tenant}@ops.example")
        assert waiting["orderNumber"] in mail["Subject"]
        assert "expired: the recipe never arrived" in mail.get_payload(decode=True).decode()
        # Orders whose recipe arrives within the limit still join: each waiting link is an entry of its
        # own, the recipe's key lists only their keys, and all of it is removed once they joined.
        on_time = [order_event(tenant, [late["recipeId"]]) for _ in range(3)]
        await deployment.produce_json("orders", on_time, "orderId")
        waits = await wait_for(lambda: waiting_state(deployment, late["recipeId"]), 60, "three waiting links")
        assert len(waits[late["recipeId"]]) == 3 and all(isinstance(k, str) for k in waits[late["recipeId"]])
        assert sorted(entry["orderId"] for key, entry in waits.items() if key != late["recipeId"]) == sorted(
            o["orderId"] for o in on_time
        )
        await deployment.produce_json("recipes", [late], "recipeId")
        delivered = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 3, 60
        )
        assert {d["orderId"] for d in delivered} == {o["orderId"] for o in on_time}
        assert len(destinations.http.hook_requests[tenant]) == 3
        assert await wait_for(lambda: waiting_state(deployment, late["recipeId"], gone=True), 30, "links removed")
    finally:
        worker.stop()

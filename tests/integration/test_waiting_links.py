"""An order may wait for its recipe, but not forever: at the limit, someone is told."""

from __future__ import annotations

import pytest

from tests.conftest import new_deployment
from tests.support import Worker, configure, hook_integration, order_event, recipe_event, unique, wait_for

pytestmark = pytest.mark.integration


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
        # A recipe that arrives within the limit still joins its waiting order.
        on_time = order_event(tenant, [late["recipeId"]])
        await deployment.produce_json("orders", [on_time], "orderId")
        await deployment.produce_json("recipes", [late], "recipeId")
        delivered = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1, 60
        )
        assert delivered[0]["orderId"] == on_time["orderId"]
        assert destinations.http.hook_requests[tenant] and len(destinations.http.hook_requests[tenant]) == 1
    finally:
        worker.stop()

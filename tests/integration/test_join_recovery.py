"""The join's state survives a restart, and two workers in one group deliver each command once."""

from __future__ import annotations

import pytest

from tests.deployments import Worker, configure, new_deployment
from tests.events import example, order_event, recipe_event, unique
from tests.integrations import local_integration

pytestmark = pytest.mark.integration


async def test_recipes_stored_before_a_restart_still_join_orders_after_it(kafka):
    deployment = new_deployment(kafka)
    tenant = unique("restart")
    worker = await Worker(deployment, "before").start().ready()
    try:
        await configure(deployment, [worker], local_integration(tenant, ["recipe.created", "order.created"]))
        recipes = [recipe_event(tenant) for _ in range(6)]
        await deployment.produce_json("recipes", recipes, "recipeId")
        # A raw-feed command is sent only after its recipe is stored.
        await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant, 6)
    finally:
        worker.stop()
    # A new data directory, as for a replaced pod: the tables come back from their changelogs.
    again = await Worker(deployment, "after").start().ready()
    try:
        await deployment.produce_json("orders", [order_event(tenant, [r["recipeId"]]) for r in recipes], "orderId")
        is_order = lambda d: d["tenant"] == tenant and d["eventType"] == "order.created"  # noqa: E731
        commands = await deployment.wait_json("deliveries", is_order, 6)
        assert {c["recipeId"] for c in commands} == {r["recipeId"] for r in recipes}
    finally:
        again.stop()


async def test_two_workers_share_the_work_and_each_command_comes_out_once(kafka):
    deployment = new_deployment(kafka)
    tenant = unique("pair")
    workers = [await Worker(deployment, name).start().ready() for name in ("one", "two")]
    try:
        s3 = {**example("integration-s3.json"), "id": unique("s3-"), "tenant": tenant}
        # A configuration reaches every worker's global table.
        await configure(deployment, workers, s3)
        await configure(deployment, workers, local_integration(tenant, ["order.created", "recipe.created"]))
        recipes = [recipe_event(tenant) for _ in range(30)]
        await deployment.produce_json("recipes", recipes, "recipeId")
        orders = [order_event(tenant, [r["recipeId"]]) for r in recipes]
        await deployment.produce_json("orders", orders, "orderId")
        # 30 raw-feed commands (local) + 30 orders x 2 integrations.
        commands = await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant, 90, 120)
        assert len({c["deliveryId"] for c in commands}) == 90
        logs = [w.log.read_text() for w in workers]
        assert all('"recipe accepted"' in log for log in logs), "both workers should have taken partitions"
    finally:
        for w in workers:
            w.stop()

"""Manual triggers: operators run a tenant's integrations again for a recipe or an order."""

from __future__ import annotations

import pytest

from tests.deployments import configure
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import local_integration

pytestmark = pytest.mark.integration


async def test_a_recipe_trigger_delivers_the_raw_feed_again(deployment, worker, destinations):
    tenant = unique("trig")
    raw_feed = local_integration(tenant, ["recipe.created"])
    await configure(deployment, [worker], raw_feed)
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    [first] = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 1)
    assert first["outcome"] == "delivered"

    deployment.cli(
        "trigger", "--tenant", tenant, "--recipe-id", recipe["recipeId"], "--by", "night shift", "--mode", "all"
    )
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2)
    assert {r["outcome"] for r in results} == {"delivered"} and len({r["deliveryId"] for r in results}) == 2
    commands = await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant, 2)
    assert sorted(c["manual"] for c in commands) == [False, True]


async def test_an_order_number_trigger_for_one_integration(deployment, worker, destinations):
    tenant = unique("trig")
    chosen = local_integration(tenant, ["order.created"])
    other = local_integration(tenant, ["order.created"])
    await configure(deployment, [worker], chosen)
    await configure(deployment, [worker], other)
    recipe, _ = recipe_with_assets(destinations, tenant)
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2)

    deployment.cli(
        "trigger",
        "--tenant",
        tenant,
        "--order-number",
        order["orderNumber"],
        "--integration",
        chosen["id"],
        "--mode",
        "all",
    )
    manual = await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant and d["manual"], 1)
    assert manual[0]["integrationId"] == chosen["id"] and manual[0]["orderId"] == order["orderId"]
    assert f"{order['orderNumber']}_ID_{order['orderId']}_R_" in manual[0]["files"][0]["name"]
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 3)
    assert {r["outcome"] for r in results} == {"delivered"}


async def test_a_trigger_for_an_unknown_order_is_reported(deployment, worker):
    tenant = unique("trig")
    deployment.cli("trigger", "--tenant", tenant, "--order-number", "no-such-order")
    [refused] = await deployment.wait_json(
        "invalid-events", lambda d: d["sourceTopic"].endswith("triggers") and tenant in str(d["reasons"]), 1
    )
    assert "has no order number 'no-such-order'" in refused["reasons"][0]

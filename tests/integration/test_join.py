"""Orders meet their recipes and fan out into one delivery command per (event, recipe, integration)."""

from __future__ import annotations

import pytest

from tests.deployments import configure
from tests.events import order_event, recipe_event, unique
from tests.integrations import local_integration

pytestmark = pytest.mark.integration

ORDER_EVENTS = ["order.created", "order.updated", "order.cancelled"]


async def tenant_with_order_integration(deployment, worker, **fields):
    tenant = unique("j")
    integration = local_integration(tenant, ORDER_EVENTS, **fields)
    await configure(deployment, [worker], integration)
    return tenant, integration


def commands_of(tenant):
    return lambda d: d["tenant"] == tenant


async def test_recipe_first_then_order(deployment, worker):
    tenant, integration = await tenant_with_order_integration(deployment, worker)
    recipe = recipe_event(tenant, "999-63CHGJokGoxPfSba-" + unique())
    await deployment.produce_json("recipes", [recipe], "recipeId")
    order = order_event(tenant, [recipe["recipeId"]], orderId="6182665224482", orderNumber="1022")
    await deployment.produce_json("orders", [order], "orderId")
    [command] = await deployment.wait_json("deliveries", commands_of(tenant), 1)
    assert command["integrationId"] == integration["id"] and command["eventType"] == "order.created"
    assert command["orderId"] == "6182665224482" and command["orderNumber"] == "1022"
    assert f"1022_ID_6182665224482_R_{recipe['recipeId']}_Ticket.pdf" in [f["name"] for f in command["files"]]
    assert "customer" not in command and "settings" not in command


async def test_order_first_waits_for_its_recipe(deployment, worker):
    tenant, _ = await tenant_with_order_integration(deployment, worker)
    recipe = recipe_event(tenant)
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    await deployment.wait_json("order-links", lambda d: d["tenant"] == tenant, 1)
    assert await deployment.read_json("deliveries", commands_of(tenant)) == []
    await deployment.produce_json("recipes", [recipe], "recipeId")
    [command] = await deployment.wait_json("deliveries", commands_of(tenant), 1)
    assert command["recipeId"] == recipe["recipeId"]


async def test_three_line_items_one_recipe_arriving_last(deployment, worker):
    tenant, _ = await tenant_with_order_integration(deployment, worker)
    recipes = [recipe_event(tenant) for _ in range(3)]
    await deployment.produce_json("recipes", recipes[:2], "recipeId")
    order = order_event(tenant, [r["recipeId"] for r in recipes])
    await deployment.produce_json("orders", [order], "orderId")
    await deployment.wait_json("deliveries", commands_of(tenant), 2)
    await deployment.produce_json("recipes", recipes[2:], "recipeId")
    commands = await deployment.wait_json("deliveries", commands_of(tenant), 3)
    assert {c["recipeId"] for c in commands} == {r["recipeId"] for r in recipes}
    assert len({c["deliveryId"] for c in commands}) == 3


async def test_updated_and_cancelled_orders_go_out_too(deployment, worker):
    tenant, _ = await tenant_with_order_integration(deployment, worker)
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    created = order_event(tenant, [recipe["recipeId"]])
    same = {"orderId": created["orderId"], "orderNumber": created["orderNumber"]}
    events = [created] + [order_event(tenant, [recipe["recipeId"]], t, **same) for t in ORDER_EVENTS[1:]]
    await deployment.produce_json("orders", events, "orderId")
    commands = await deployment.wait_json("deliveries", commands_of(tenant), 3)
    assert sorted(c["eventType"] for c in commands) == sorted(ORDER_EVENTS)


async def test_disabled_and_other_tenants_integrations_receive_nothing(deployment, worker):
    tenant, enabled = await tenant_with_order_integration(deployment, worker)
    disabled = local_integration(tenant, ORDER_EVENTS, enabled=False)
    elsewhere = local_integration(unique("other"), ORDER_EVENTS)
    await configure(deployment, [worker], disabled)
    await configure(deployment, [worker], elsewhere)
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    [command] = await deployment.wait_json("deliveries", commands_of(tenant), 1)
    assert command["integrationId"] == enabled["id"]
    assert await deployment.read_json("deliveries", lambda d: d["integrationId"] == elsewhere["id"]) == []


async def test_raw_feed_and_order_integrations_side_by_side_with_a_temporary_recipe(deployment, worker):
    tenant, orders_only = await tenant_with_order_integration(deployment, worker)
    raw_feed = local_integration(tenant, ["recipe.created"])
    await configure(deployment, [worker], raw_feed)
    temporary = recipe_event(tenant, temporary=True)
    kept = recipe_event(tenant)
    await deployment.produce_json("recipes", [temporary, kept], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [kept["recipeId"]])], "orderId")
    commands = await deployment.wait_json("deliveries", commands_of(tenant), 3)
    raw = [c for c in commands if c["integrationId"] == raw_feed["id"]]
    ordered = [c for c in commands if c["integrationId"] == orders_only["id"]]
    assert {c["recipeId"] for c in raw} == {temporary["recipeId"], kept["recipeId"]}
    assert all(c["eventType"] == "recipe.created" and c["orderId"] is None for c in raw)
    assert f"{kept['recipeId']}-Ticket.pdf" in [f["name"] for f in raw[0]["files"] + raw[1]["files"]]
    assert [c["recipeId"] for c in ordered] == [kept["recipeId"]]

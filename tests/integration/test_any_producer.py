"""Upstream teams may produce with any client: librdkafka-based ones place keys by CRC32, not murmur2.
The service's tables must never depend on that."""

from __future__ import annotations

import pytest

from tests.deployments import configure
from tests.events import order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.partitioning import crc32_partition, murmur2_partition

pytestmark = pytest.mark.integration


def placed_apart(prefix: str) -> str:
    """A key that CRC32 and murmur2 put in different partitions."""
    while True:
        key = unique(prefix)
        if crc32_partition()(key.encode()) != murmur2_partition(key.encode()):
            return key


async def test_a_crc32_producer_s_events_join_deliver_and_cancel(deployment, worker, destinations):
    tenant = unique("crc")
    crc32 = crc32_partition()
    # The first attempt meets a busy hook: a retry waits while the order is cancelled.
    destinations.http.hook_statuses[tenant] = [(503, {"Retry-After": "6"}, 0.0)]
    hook = hook_integration(destinations, tenant, events=("order.created", "order.cancelled"))
    await configure(deployment, [worker], hook)
    recipe = recipe_event(tenant, recipe_id=placed_apart("r-"))
    order = order_event(tenant, [recipe["recipeId"]], orderId=placed_apart("o"))
    await deployment.produce_json("recipes", [recipe], "recipeId", crc32)
    await deployment.produce_json("orders", [order], "orderId", crc32)
    await deployment.wait_json("deliveries-retry", lambda d: d["tenant"] == tenant, 1)
    same = {"orderId": order["orderId"], "orderNumber": order["orderNumber"]}
    cancelled = order_event(tenant, [recipe["recipeId"]], "order.cancelled", **same)
    await deployment.produce_json("orders", [cancelled], "orderId", crc32)
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 3)
    outcomes = {(r["eventType"], r["attempt"]): r["outcome"] for r in results}
    assert outcomes == {
        ("order.created", 1): "failed",
        ("order.cancelled", 1): "delivered",
        ("order.created", 2): "superseded",  # the retry saw the cancellation
    }
    # An operator's trigger finds the order and sends its latest state: the cancellation.
    deployment.cli("trigger", "--tenant", tenant, "--order-id", order["orderId"], "--mode", "all")
    [manual] = await deployment.wait_json(
        "delivery-results",
        lambda d: d["tenant"] == tenant and d["deliveryId"] not in {r["deliveryId"] for r in results},
        1,
    )
    assert manual["eventType"] == "order.cancelled" and manual["outcome"] == "delivered"
    invalid = await deployment.read_json("invalid-events", lambda d: tenant in str(d.get("reasons")))
    assert invalid == []


async def test_events_already_on_their_partition_skip_the_re_publish_hop(deployment, worker, destinations):
    """A producer that hashes keys as the service does (murmur2, as Java clients) puts each event on
    the partition the service would: it is handled where it is, not copied onto recipe-events or
    order-events first. One placed by CRC32 on another partition still is."""
    tenant = unique("hop")
    hook = hook_integration(destinations, tenant, events=("recipe.created", "order.created"))
    await configure(deployment, [worker], hook)
    placed = recipe_event(tenant)
    apart = recipe_event(tenant, recipe_id=placed_apart("r-"))
    await deployment.produce_json("recipes", [placed], "recipeId")
    await deployment.produce_json("recipes", [apart], "recipeId", crc32_partition())
    order = order_event(tenant, [placed["recipeId"], apart["recipeId"]])
    await deployment.produce_json("orders", [order], "orderId")
    # Each recipe's raw feed, and the order's delivery per recipe.
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 4)
    assert sorted((r["eventType"], r["outcome"]) for r in results) == [
        ("order.created", "delivered"),
        ("order.created", "delivered"),
        ("recipe.created", "delivered"),
        ("recipe.created", "delivered"),
    ]
    republished = await deployment.read_json("recipe-events", lambda d: d.get("tenant") == tenant)
    assert [r["recipeId"] for r in republished] == [apart["recipeId"]], "only the CRC32-placed recipe took the hop"
    assert await deployment.read_json("order-events", lambda d: d.get("tenant") == tenant) == []

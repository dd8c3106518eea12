"""Validated ingestion and integration configuration, against the real broker and a real worker."""

from __future__ import annotations

import base64
import random

import orjson
import pytest

from tests.deployments import Worker, configure, new_deployment, put_integration
from tests.events import example, malformed, order_event, recipe_event, unique
from tests.integrations import local_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def test_a_thousand_events_with_a_tenth_malformed_are_all_accounted_for(deployment, worker):
    tenant = unique("bulk")
    await configure(deployment, [worker], local_integration(tenant, ["recipe.created", "order.created"]))
    recipes = [recipe_event(tenant) for _ in range(500)]
    orders = [order_event(tenant, [r["recipeId"]]) for r in recipes]
    rng = random.Random(7)
    bad_recipes = set(rng.sample(range(500), 50))
    bad_orders = set(rng.sample(range(500), 50))
    recipe_messages = [
        malformed("recipe", r, i) if i in bad_recipes else (r["recipeId"].encode(), orjson.dumps(r))
        for i, r in enumerate(recipes)
    ]
    order_messages = [
        malformed("order", o, i) if i in bad_orders else (o["orderId"].encode(), orjson.dumps(o))
        for i, o in enumerate(orders)
    ]
    await deployment.produce("recipes", recipe_messages)
    await deployment.produce("orders", order_messages)

    # Every valid recipe gives its raw-feed delivery; every valid order whose recipe is valid gives one.
    expected_orders = len([i for i in range(500) if i not in bad_orders and i not in bad_recipes])
    commands = await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant, 450 + expected_orders, 180)
    assert len([c for c in commands if c["eventType"] == "recipe.created"]) == 450
    ours = {m[1] for m in recipe_messages + order_messages}
    invalid = await deployment.wait_json(
        "invalid-events", lambda d: d["value"] is not None and base64.b64decode(d["value"]) in ours, 100, 120
    )
    assert all(d["reasons"] and d["sourceTopic"].endswith(("recipes", "orders")) for d in invalid)
    assert {d["sourceTopic"].rsplit(".", 1)[1] for d in invalid} == {"recipes", "orders"}
    assert all(isinstance(d["offset"], int) and isinstance(d["partition"], int) for d in invalid)


async def test_a_valid_s3_integration_is_published_with_its_secrets_encrypted(deployment, worker):
    doc = {**example("integration-s3.json"), "id": unique("s3-"), "tenant": unique("t")}
    await configure(deployment, [worker], doc)
    raw = [r.value for r in await deployment.read("integrations") if r.key == doc["id"].encode()]
    assert raw and all(b"AKIAEXAMPLEKEY" not in v and b"example-secret-access-key" not in v for v in raw)
    async with worker.api() as api:
        listed = (await api.get("/v1/integrations")).json()["integrations"]
    [shown] = [i for i in listed if i["id"] == doc["id"]]
    assert shown["settings"]["access-key-secret"] == "********" and shown["settings"]["bucket"] == "acme-prod"
    # The CLI's view is redacted too.
    show = deployment.cli("integrations", "show", doc["id"]).stdout
    assert "AKIAEXAMPLEKEY" not in show and "********" in show


async def test_a_bad_configuration_is_refused_naming_the_field_and_nothing_is_published(deployment):
    doc = {**example("integration-zapier.json"), "id": unique("bad-"), "failureNotificationList": "not-an-address"}
    doc["settings"] = {"hook-url": "http://hooks.example/catch"}
    # The shared deployment allows plain-http hooks for its local receiver; a production one does not.
    result = put_integration(deployment, doc, OUTBOUND_ALLOW_HTTP_HOOKS="false")
    assert result.returncode == 1
    assert "failureNotificationList" in result.stderr and "settings.hook-url" in result.stderr
    assert not [r for r in await deployment.read("integrations") if r.key == doc["id"].encode()]


async def test_disable_enable_and_delete_reach_the_worker(deployment, worker):
    doc = local_integration(unique("t"), ["recipe.created"])
    await configure(deployment, [worker], doc)
    deployment.cli("integrations", "disable", doc["id"])

    async def state():
        async with worker.api() as api:
            found = [i for i in (await api.get("/v1/integrations")).json()["integrations"] if i["id"] == doc["id"]]
        return found[0]["enabled"] if found else None

    await wait_for(lambda: _is(state(), False), 60, "integration disabled")
    assert doc["id"] in deployment.cli("integrations", "list").stdout
    deployment.cli("integrations", "delete", doc["id"])
    await wait_for(lambda: _is(state(), None), 60, "integration deleted")
    assert deployment.cli("integrations", "show", doc["id"], check=False).returncode == 1


async def _is(value, expected) -> bool:
    return (await value) is expected


async def test_the_api_refuses_requests_without_the_token(worker):
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as client:
        r = await client.get("/v1/integrations")
    assert r.status_code == 401 and "token" in r.json()["error"]


async def test_a_malformed_internal_message_is_parked_not_lost(kafka):
    # Its own deployment: the garbage would stay on topics that other tests read.
    deployment = new_deployment(kafka)
    worker = await Worker(deployment, "garbage").start().ready()
    try:
        key = unique("garbage").encode()
        for topic in ("deliveries", "deliveries-retry", "order-activity"):
            await deployment.produce(topic, [(key, b"{not a command")])
        parked = await deployment.wait_json("invalid-events", lambda d: d["key"] == base64.b64encode(key).decode(), 3)
        sources = {d["sourceTopic"].rsplit(".", 1)[1] for d in parked}
        assert sources == {"deliveries", "deliveries-retry", "order-activity"}
        assert all("internal error" in d["reasons"][0] for d in parked)
    finally:
        worker.stop()

"""The promise under stress: every order's files reach every configured destination at least once;
duplicates only as overwrites of the same names. Real worker processes, the real broker, loopback.

`OUTBOUND_RELIABILITY_ORDERS` sets the size (default 2,000; the README's longer run uses 10,000).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import new_deployment
from tests.reliability.conftest import report
from tests.support import (
    Worker,
    configure,
    integration,
    load_local_kafka,
    local_integration,
    make_bucket,
    malformed,
    order_event,
    recipe_event,
    s3_client,
    s3_settings,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

ORDERS = int(os.environ.get("OUTBOUND_RELIABILITY_ORDERS", "2000"))
TENANTS = 10


def one_file_recipe(destinations, tenant):
    """A recipe with one small production file on the test asset host (a delivery is that file and
    its manifest)."""
    recipe = recipe_event(tenant)
    recipe["files"] = recipe["files"][:1]
    recipe["files"][0]["url"] = destinations.http.add_asset(f"{unique()}.json", os.urandom(512))
    return recipe


def local_files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


async def s3_keys(destinations, bucket) -> set[str]:
    keys: set[str] = set()
    async with s3_client(destinations) as s3:
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(item["Key"].rsplit("/", 1)[-1] for item in page.get("Contents", []))
    return keys


def restarts(log: Path) -> int:
    text = log.read_text()
    return text.count("Crashed reason") + text.count("Restarting dead")


async def test_r1_hard_kills_lose_nothing(kafka, destinations):
    started = time.monotonic()
    deployment = new_deployment(
        kafka, **destinations.worker_env(), OUTBOUND_DELIVERY_CONCURRENCY="16", OUTBOUND_INTEGRATION_CONCURRENCY="4"
    )
    bucket = unique("r1-")
    await make_bucket(destinations, bucket)
    tenants = [unique("r1t") for _ in range(TENANTS)]
    worker = await Worker(deployment, "r1").start().ready()
    for tenant in tenants:
        await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
        await configure(
            deployment, [worker], integration(tenant, "s3", s3_settings(destinations, bucket, prefix=tenant))
        )
    recipes = {t: [one_file_recipe(destinations, t) for _ in range(20)] for t in tenants}
    orders = [order_event(t, [recipes[t][i % 20]["recipeId"]]) for i in range(ORDERS) for t in [tenants[i % TENANTS]]]
    expected = len(orders) * 2  # each order's file and its manifest, at each destination
    await deployment.produce_json("recipes", [r for rs in recipes.values() for r in rs], "recipeId")
    await deployment.produce_json("orders", orders, "orderId")
    root = deployment.workdir / "deliveries"
    for share in (0.2, 0.4, 0.6):
        await wait_for(lambda share=share: len(local_files(root)) >= share * expected, 300, f"{share:.0%} delivered")
        worker.stop(signal.SIGKILL)
        worker = await Worker(deployment, "r1").start().ready()
    try:
        await wait_for(lambda: len(local_files(root)) >= expected, 300, "every file in the folders")

        async def all_in_s3() -> bool:
            return len(await s3_keys(destinations, bucket)) >= expected

        await wait_for(all_in_s3, 300, "every object in the bucket")
        assert len(local_files(root)) == expected and len(await s3_keys(destinations, bucket)) == expected
        delivered = Counter(
            d["deliveryId"]
            for d in await deployment.read_json("delivery-results", lambda d: d["outcome"] == "delivered")
        )
        assert len(delivered) == len(orders) * 2  # one delivery per (order, destination)
        duplicates = sum(n - 1 for n in delivered.values())
        report(
            "R1 hard kills (3 SIGKILLs)",
            orders=len(orders),
            deliveries=len(delivered),
            delivered=len(delivered),
            duplicates=duplicates,
            lost=0,
            seconds=round(time.monotonic() - started),
        )
    finally:
        worker.stop()


def poisoned(kind, docs, key_field):
    """Eleven classes of bad input, cycled: ten malformed values or keys, and a tombstone."""
    return [malformed(kind, d, i) if i % 11 < 10 else (str(d[key_field]).encode(), None) for i, d in enumerate(docs)]


async def test_r3_poison_is_parked_and_everything_valid_is_delivered(kafka, destinations):
    started = time.monotonic()
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_MAX_EVENT_BYTES="200000")
    tenant = unique("r3")
    worker = await Worker(deployment, "r3").start().ready()
    try:
        await configure(deployment, [worker], local_integration(tenant, ["recipe.created", "order.created"]))
        per_topic, bad_per_topic = ORDERS // 2, ORDERS // 20  # a tenth of all events malformed
        recipes = [one_file_recipe(destinations, tenant) for _ in range(per_topic - bad_per_topic)]
        orders = [order_event(tenant, [recipes[i % len(recipes)]["recipeId"]]) for i in range(per_topic)]
        good_orders = orders[bad_per_topic:]
        bad = poisoned("recipe", [recipe_event(tenant) for _ in range(bad_per_topic)], "recipeId")
        bad_orders = poisoned("order", orders[:bad_per_topic], "orderId")
        await deployment.produce("recipes", [(r["recipeId"].encode(), orjson.dumps(r)) for r in recipes] + bad)
        await deployment.produce("orders", [(o["orderId"].encode(), orjson.dumps(o)) for o in good_orders] + bad_orders)
        expected = (len(recipes) + len(good_orders)) * 2  # each delivery: its file and its manifest
        root = deployment.workdir / "deliveries"
        await wait_for(lambda: len(local_files(root)) >= expected, 300, "every valid event delivered")
        from_input = lambda d: d["sourceTopic"].endswith((".recipes", ".orders"))  # noqa: E731
        invalid = await deployment.wait_json("invalid-events", from_input, len(bad) + len(bad_orders), 120)
        assert all(d["reasons"] for d in invalid)
        assert len([d for d in invalid if d["reasons"] == ["message has no value"]]) == 2 * (bad_per_topic // 11)
        assert len(local_files(root)) == expected
        assert restarts(worker.log) == 0
        report(
            "R3 poison",
            events=len(recipes) + len(good_orders) + len(bad) + len(bad_orders),
            malformed=len(invalid),
            delivered=expected // 2,
            lost=0,
            agent_restarts=restarts(worker.log),
            seconds=round(time.monotonic() - started),
        )
    finally:
        worker.stop()


async def readiness_seen(worker: Worker, deadline: float = 120.0) -> list[int]:
    """The readiness answers of a starting worker, until the first 200."""
    seen: list[int] = []

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{worker.port}/health/ready", timeout=2)
        except httpx.HTTPError:
            return False
        seen.append(answer.status_code)
        return answer.status_code == 200

    await wait_for(ready, deadline, f"worker {worker.name} to be ready")
    return seen


async def test_r4_broker_restart_and_a_worker_joining_then_leaving_lose_nothing(destinations):
    started = time.monotonic()
    local_kafka = load_local_kafka()
    broker = local_kafka.Broker(
        Path(tempfile.mkdtemp(prefix="outbound-r4-")), local_kafka.free_port(), local_kafka.free_port()
    )
    local_kafka.start(broker)
    first = second = None
    try:
        deployment = new_deployment(broker.bootstrap, **destinations.worker_env())
        tenant = unique("r4")
        first = await Worker(deployment, "one").start().ready()
        await configure(deployment, [first], local_integration(tenant, ["order.created"]))
        recipes = [one_file_recipe(destinations, tenant) for _ in range(20)]
        orders = [order_event(tenant, [recipes[i % 20]["recipeId"]]) for i in range(ORDERS // 2)]
        await deployment.produce_json("recipes", recipes, "recipeId")
        await deployment.produce_json("orders", orders, "orderId")
        expected = len(orders) * 2
        root = deployment.workdir / "deliveries"
        await wait_for(lambda: len(local_files(root)) >= 0.2 * expected, 300, "a fifth delivered")
        local_kafka.stop(broker)  # the broker goes away mid-stream and comes back on the same ports
        local_kafka.start(broker)
        await wait_for(lambda: len(local_files(root)) >= 0.4 * expected, 300, "two fifths delivered")
        second = Worker(deployment, "two").start()
        answers = await readiness_seen(second)
        assert answers[0] == 503 and answers[-1] == 200, answers  # not ready while it recovers and joins
        await wait_for(lambda: len(local_files(root)) >= 0.7 * expected, 300, "seven tenths delivered")
        second.stop()  # back to one worker
        await wait_for(lambda: len(local_files(root)) >= expected, 300, "everything delivered")
        # The tables came through intact: an order for an old recipe still finds it.
        late = order_event(tenant, [recipes[0]["recipeId"]])
        await deployment.produce_json("orders", [late], "orderId")
        await wait_for(lambda: len(local_files(root)) >= expected + 2, 120, "an order for an old recipe")
        assert len(local_files(root)) == expected + 2
        assert (await readiness_seen(first))[-1] == 200
        report(
            "R4 broker restart, workers 1 -> 2 -> 1",
            orders=len(orders) + 1,
            delivered=len(orders) + 1,
            lost=0,
            seconds=round(time.monotonic() - started),
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        local_kafka.stop(broker)

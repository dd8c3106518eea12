"""Records: how many Kafka records the service consumes and produces per recipe and per order.

One worker, a tenant with one catch hook that takes recipes (raw feed) and orders. N recipes are
sent, then N orders of one line each (to those recipes, so every order joins at once). After each
phase the group's commits have reached the end of every topic and nothing moves any more; then:
- produced: records added to every topic of the deployment (changelogs included), the upstream's
  input records not counted;
- consumed: the group's committed offsets moved on every topic, plus what the worker's group-less
  views read (the integrations and the order-number index: every worker reads them whole).
Every figure is for this worker's layout of the day: no baseline, the target is a count.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from service.kafka_admin import end_offsets
from tests.bench.harness import Bench, Row, poll_until, produce_all, raw_feed_and_orders_hook
from tests.deployments import Deployment
from tests.events import order_event, recipe_event

INPUTS = ("recipes", "orders")
VIEWS = ("integrations", "order-index")  # read whole by every worker, outside the group
QUIET_SECONDS = 4.0  # over a commit interval (2.8 s) with nothing moving: the phase is over


async def deployment_topics(deployment: Deployment) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(deployment.prefix))
    finally:
        await admin.close()


async def group_committed(deployment: Deployment) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(deployment.env()["OUTBOUND_APP_ID"])
    finally:
        await admin.close()
    totals: dict[str, int] = {}
    for tp, meta in offsets.items():
        if meta.offset >= 0:
            totals[tp.topic] = totals.get(tp.topic, 0) + meta.offset
    return totals


async def snapshot(deployment: Deployment) -> tuple[dict[str, int], dict[str, int]]:
    ends = {}
    for topic in await deployment_topics(deployment):
        ends[topic] = sum((await end_offsets({"bootstrap_servers": deployment.bootstrap}, topic)).values())
    return ends, await group_committed(deployment)


async def settled(deployment: Deployment) -> tuple[dict[str, int], dict[str, int]]:
    """The snapshot once the group has committed every topic it reads to its end and nothing moved for
    QUIET_SECONDS (the tenant rows and view rows are written at the barrier after the last record)."""
    last = await snapshot(deployment)
    since = time.monotonic()
    deadline = since + 300
    while True:
        await asyncio.sleep(0.5)
        now = await snapshot(deployment)
        ends, committed = now
        caught_up = all(committed[t] >= ends.get(t, 0) for t in committed)
        if now != last:
            last, since = now, time.monotonic()
        elif caught_up and time.monotonic() - since >= QUIET_SECONDS:
            return now
        if time.monotonic() > deadline:
            raise TimeoutError("the deployment's topics never settled")


def counts(
    deployment: Deployment, before: tuple[dict[str, int], dict[str, int]], after: tuple[dict[str, int], dict[str, int]]
) -> tuple[int, int, dict[str, int]]:
    (ends0, committed0), (ends1, committed1) = before, after
    inputs = {deployment.topic(k) for k in INPUTS}
    views = {deployment.topic(k) for k in VIEWS}
    produced_by_topic = {t: ends1[t] - ends0.get(t, 0) for t in ends1 if t not in inputs}
    consumed = sum(committed1[t] - committed0.get(t, 0) for t in committed1)
    consumed += sum(ends1.get(t, 0) - ends0.get(t, 0) for t in views)
    return consumed, sum(produced_by_topic.values()), {t: n for t, n in produced_by_topic.items() if n}


async def bench_records(bench: Bench) -> None:
    count = max(100, bench.sizes.throughput_events // 10)
    deployment = bench.deployment()
    worker = await bench.worker(deployment, "records")
    try:
        tenant = await raw_feed_and_orders_hook(bench, deployment, [worker], "rec")
        posts = bench.destinations.http.hook_requests[tenant]
        start = await settled(deployment)
        recipes = [recipe_event(tenant) for _ in range(count)]
        await produce_all(
            bench.bootstrap, deployment.topic("recipes"), [(r["recipeId"].encode(), orjson.dumps(r)) for r in recipes]
        )
        await poll_until(lambda: _at_least(posts, count), 300, "every recipe's POST")
        after_recipes = await settled(deployment)
        orders = [order_event(tenant, [r["recipeId"]]) for r in recipes]
        await produce_all(
            bench.bootstrap, deployment.topic("orders"), [(o["orderId"].encode(), orjson.dumps(o)) for o in orders]
        )
        await poll_until(lambda: _at_least(posts, 2 * count), 300, "every order's POST")
        after_orders = await settled(deployment)
    finally:
        bench.stop_workers()
    for what, before, after in (("recipe", start, after_recipes), ("order", after_recipes, after_orders)):
        consumed, produced, by_topic = counts(deployment, before, after)
        detail = ", ".join(f"{t.removeprefix(deployment.prefix)} {n / count:.2f}" for t, n in sorted(by_topic.items()))
        print(f"  per {what}: consumed {consumed / count:.2f}, produced {produced / count:.2f} ({detail})", flush=True)
        target = 8 if what == "recipe" else 14
        bench.report(
            Row(
                f"Kafka records per {what} (one line, one catch hook; all topics, changelogs included)",
                f"{(consumed + produced) / count:.1f} "
                f"({consumed / count:.1f} consumed, {produced / count:.1f} produced)",
                f"target ≤ {target}",
                f"{(consumed + produced) / count / target:.2f}",
                f"1 run of {count}",
            )
        )


async def _at_least(items: list[object], n: int) -> bool:
    return len(items) >= n

"""An integration's maxPerSecond, as its receiver counts it, from two workers; and another tenant's
deliveries not kept waiting behind the throttled ones."""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from service.planning.commands import delivery_id
from tests.deployments import Worker, answers_ready, configure, new_deployment, put_integration
from tests.events import of_tenant, order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.partitioning import keys_spread_evenly
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

LIMIT = 5


def most_in_any_second(arrivals: list[float]) -> int:
    """The most requests any half-open second [t, t + 1) holds (the busiest ones begin at a request)."""
    ordered = sorted(arrivals)
    return max(sum(1 for t in ordered if start <= t < start + 1.0) for start in ordered)


def delivered_lines(log: str, integration_id: str) -> int:
    lines = (orjson.loads(line) for line in log.splitlines() if line.startswith("{"))
    return sum(
        1 for line in lines if line.get("message") == "delivered" and line.get("integrationId") == integration_id
    )


async def test_a_hook_limited_to_5_per_second_gets_100_orders_at_most_5_in_any_second_from_two_workers(
    kafka, destinations
):
    # A small in-flight window: without parking, twenty deliveries waiting for their rate would fill it
    # and the other tenant's would wait behind them. This machine is shared and busy: between a
    # worker's start and the hook server's clock a request was seen up to 235 ms late (load 11), so the
    # deployment leaves the slots 0.35 s of margin instead of 0.15 s.
    deployment = new_deployment(
        kafka,
        **destinations.worker_env(),
        OUTBOUND_MAX_MESSAGES_IN_FLIGHT="20",
        OUTBOUND_SHUTDOWN_GRACE_SECONDS="0",
        OUTBOUND_RATE_MARGIN_SECONDS="0.35",
    )
    throttled, other = unique("paced"), unique("free")
    workers = [Worker(deployment, name).start() for name in ("pace-a", "pace-b")]
    try:
        for w in workers:
            await w.ready()
        await wait_for(lambda: answers_ready(workers), 120, "both workers to own their partitions")
        limited = hook_integration(destinations, throttled, maxPerSecond=LIMIT)
        await configure(deployment, workers, limited)
        await configure(deployment, workers, hook_integration(destinations, other))
        throttled_recipe, other_recipe = recipe_event(throttled), recipe_event(other)
        await deployment.produce_json("recipes", [throttled_recipe, other_recipe], "recipeId")
        # As many orders in each partition: each worker has its share of the rate and of the work
        # (a worker's share follows its partitions, not its backlog).
        orders = [order_event(throttled, [throttled_recipe["recipeId"]], orderId=o) for o in keys_spread_evenly(100)]
        await deployment.produce_json("orders", orders, "orderId")

        # Everything below is measured by the hook server's clock, and nothing reads the broker
        # meanwhile (the test's own reads would delay the server's handling of the requests).
        arrivals = destinations.http.hook_arrivals
        await wait_for(lambda: len(arrivals[throttled]) >= 10, 60, "the throttled hook's deliveries to be under way")
        sent_at = time.monotonic()
        await deployment.produce_json(
            "orders", [order_event(other, [other_recipe["recipeId"]]) for _ in range(5)], "orderId"
        )
        await wait_for(lambda: len(arrivals[other]) >= 5, 60, "the other tenant's orders")
        waited = max(arrivals[other]) - sent_at
        assert waited < 5, f"the other tenant waited {waited:.1f}s behind the throttled one"
        assert len(arrivals[throttled]) < 90, "the other tenant's orders should come while the throttled ones go"
        await wait_for(lambda: len(arrivals[throttled]) >= 100, 120, "the throttled hook's 100 orders")

        ordered = sorted(arrivals[throttled])
        closest = min(b - a for a, b in zip(ordered, ordered[LIMIT:], strict=False))
        assert most_in_any_second(ordered) <= LIMIT, f"{LIMIT + 1} requests within {closest:.3f}s"
        # Both workers sent their share, and together they kept close to the limit: 100 at 5/s take
        # 20 s; with the margin, a start every 0.28 s: 28 s.
        span = ordered[-1] - ordered[0]
        assert 19 <= span < 36, f"100 requests took {span:.1f}s"
        results = await deployment.wait_json("delivery-results", of_tenant(throttled), 100, 60)
        assert {r["outcome"] for r in results} == {"delivered"}
        assert {r["attempt"] for r in results} == {1}  # waiting for the rate is not a failed attempt
        hook_ids = destinations.http.hook_ids(throttled)
        assert len(hook_ids) == 100 and len(set(hook_ids)) == 100  # each once
        assert all(delivered_lines(w.log.read_text(), limited["id"]) > 10 for w in workers)
    finally:
        for w in workers:
            w.stop(signal.SIGKILL)


async def test_limits_are_configured_shown_and_refused_when_nonsense_and_a_429_still_wins(
    deployment, worker, destinations
):
    tenant = unique("told")
    limited = hook_integration(destinations, tenant, maxPerSecond=2, maxConcurrent=1)
    for nonsense, reason in (
        ({"maxPerSecond": 0}, "maxPerSecond: 0 is less than or equal to the minimum of 0"),
        ({"maxConcurrent": -1}, "maxConcurrent: -1 is less than the minimum of 1"),
    ):
        refused = put_integration(deployment, {**limited, **nonsense})
        assert refused.returncode == 1 and reason in refused.stderr
    await configure(deployment, [worker], limited)
    shown = orjson.loads(deployment.cli("integrations", "show", limited["id"]).stdout)
    assert (shown["maxPerSecond"], shown["maxConcurrent"]) == (2, 1)

    # The receiver asks for 5 s; the rate alone would allow the retry after the retry delay (2 s).
    destinations.http.hook_statuses[tenant] = [(429, {"Retry-After": "5"}, 0.0)]
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    arrivals = destinations.http.hook_arrivals
    await wait_for(lambda: len(arrivals[tenant]) >= 2, 60, "the retry after the 429")
    assert arrivals[tenant][1] - arrivals[tenant][0] >= 5.0
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 2)
    assert sorted((r["attempt"], r["outcome"]) for r in results) == [(1, "failed"), (2, "delivered")]


async def test_max_concurrent_holds_a_slow_hook_to_its_attempts_at_once(deployment, worker, destinations):
    tenant = unique("one-at-a-time")
    destinations.http.hook_responders[tenant] = lambda headers, seen: (200, {}, 0.5)
    await configure(deployment, [worker], hook_integration(destinations, tenant, maxConcurrent=1))
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]]) for _ in range(4)], "orderId")
    await deployment.wait_json("delivery-results", of_tenant(tenant), 4)
    # The worker owns every partition: its share is the whole 1 (OUTBOUND_INTEGRATION_CONCURRENCY is 2).
    assert destinations.http.hook_most_in_flight[tenant] == 1


async def test_an_orders_deliveries_parked_for_the_rate_still_reach_the_hook_in_event_order(
    deployment, worker, destinations
):
    tenant = unique("in-line")
    recipe = recipe_event(tenant)
    fillers = [order_event(tenant, [recipe["recipeId"]]) for _ in range(6)]
    created = order_event(tenant, [recipe["recipeId"]])
    updated = order_event(tenant, [recipe["recipeId"]], "order.updated", orderId=created["orderId"])

    events = ("order.created", "order.updated")
    config = hook_integration(destinations, tenant, events=events, maxPerSecond=2)
    slow = delivery_id(created["eventId"], recipe["recipeId"], config["id"])
    # The order's "created" is answered slowly: were its "updated" run beside it, it would be answered first.
    destinations.http.hook_responders[tenant] = lambda headers, seen: (
        (200, {}, 2.0) if headers.get("webhook-id") == slow else 200
    )
    await configure(deployment, [worker], config)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [*fillers, created, updated], "orderId")
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 8, 90)
    assert {r["outcome"] for r in results} == {"delivered"}
    ours = [orjson.loads(b) for b in destinations.http.hook_answered[tenant]]
    ours = [b["eventType"] for b in ours if b.get("orderId") == created["orderId"]]
    assert ours == ["order.created", "order.updated"]

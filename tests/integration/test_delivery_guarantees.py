"""Every order's files arrive, or someone is told: crashes, stops, odd failures and slow retries.

Each test that stops a worker has its own deployment, so its killed worker leaves nothing behind
for the others.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from datetime import datetime
from pathlib import Path

import pytest

from tests.deployments import Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_event, recipe_with_assets, unique
from tests.integrations import hook_integration, local_integration
from tests.partitioning import keys_in_one_partition
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
async def test_a_slow_delivery_is_not_lost_when_later_ones_finish_first(kafka, destinations, stop_signal):
    # Grace shorter than the slow hook's answer: a stop cancels the slow delivery instead of finishing it.
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_SHUTDOWN_GRACE_SECONDS="1")
    slow, fast = unique("slow"), unique("fast")
    destinations.http.hook_statuses[slow] = [(200, {}, 20.0)]
    order_ids = keys_in_one_partition(21)
    worker = await Worker(deployment, "first").start().ready()
    try:
        await configure(deployment, [worker], hook_integration(destinations, slow))
        await configure(deployment, [worker], hook_integration(destinations, fast))
        slow_recipe, fast_recipe = recipe_event(slow), recipe_event(fast)
        await deployment.produce_json("recipes", [slow_recipe, fast_recipe], "recipeId")
        await deployment.produce_json(
            "orders", [order_event(slow, [slow_recipe["recipeId"]], orderId=order_ids[0])], "orderId"
        )
        await wait_for(lambda: destinations.http.hook_requests[slow], 60, "the slow delivery to start")
        fast_orders = [order_event(fast, [fast_recipe["recipeId"]], orderId=o) for o in order_ids[1:]]
        await deployment.produce_json("orders", fast_orders, "orderId")
        await deployment.wait_json("delivery-results", of_tenant(fast), 20)
        # A commit after the fast ones were acknowledged: their lines in the tenant's list (sent once
        # their results were folded into the operators' view) have been read and committed.
        await wait_for(lambda: deployment.committed_everything("tenant-activity"), 60, "a commit")
        assert destinations.http.hook_in_flight[slow] == 1, "the slow delivery is still running"
        worker.stop(stop_signal)
    finally:
        worker.stop()
    again = await Worker(deployment, "second").start().ready()
    try:
        [result] = await deployment.wait_json("delivery-results", of_tenant(slow), 1, 90)
        assert result["outcome"] == "delivered"
        ids = destinations.http.hook_ids(slow)
        assert len(ids) == 2 and ids[0] == ids[1] == result["deliveryId"]
    finally:
        again.stop()


# ------------------------------------------------------------------ every failure takes the retry path


async def test_settings_that_cannot_work_fail_the_delivery_and_tell_people(deployment, worker, destinations):
    tenant = unique("badurl")
    # Both pass the contract's schema, and the client libraries raise errors that are not delivery errors.
    hook = hook_integration(destinations, tenant)
    hook["settings"]["hook-url"] = "https://a..b/hook"
    files = local_integration(tenant, ["order.created"], failureNotificationList=f"alerts-{tenant}@ops.example")
    await configure(deployment, [worker], hook)
    await configure(deployment, [worker], files)
    recipe = recipe_event(tenant)
    recipe["files"][0]["url"] = "https://cdn:99999/recipe.json"
    await deployment.produce_json("recipes", [recipe], "recipeId")
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("orders", [order], "orderId")
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 2)
    assert {(r["outcome"], r["final"]) for r in results} == {("failed", True)}
    failed = await deployment.wait_json("deliveries-failed", lambda d: d["command"]["tenant"] == tenant, 2)
    assert {f["command"]["integrationId"] for f in failed} == {hook["id"], files["id"]}
    inbox = destinations.smtp.inbox
    await wait_for(lambda: len(inbox.to(f"alerts-{tenant}@ops.example")) == 2, 60, "two failure notifications")
    assert await parked_of(deployment, tenant) == []


async def test_a_disk_problem_is_retried_not_parked(kafka, destinations):
    spool = Path(destinations.sftp.root).parent / unique("spool-")
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_SPOOL_DIR=str(spool))
    tenant = unique("disk")
    worker = await Worker(deployment, "disk").start().ready()
    try:
        await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
        # The spool folder becomes a file: every download fails with an OSError until it is a folder again.
        spool.rmdir() if spool.is_dir() else None
        spool.write_bytes(b"")
        recipe, _ = recipe_with_assets(destinations, tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
        [first] = await deployment.wait_json("delivery-results", of_tenant(tenant), 1)
        assert first["outcome"] == "failed" and not first["final"], first
        assert "Error" in first["error"]  # the OS error's name, e.g. FileExistsError
        os.unlink(spool)
        spool.mkdir()
        delivered = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1, 60
        )
        assert delivered[0]["attempt"] == 2
        assert await deployment.read_json("invalid-events") == []
    finally:
        worker.stop()


async def test_a_paused_broker_parks_nothing(kafka_broker, deployment, worker, destinations):
    tenant = unique("pause")
    await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]]) for _ in range(60)], "orderId")
    await wait_for(lambda: deployment.read_json("delivery-results", of_tenant(tenant)), 60, "deliveries under way")
    pid = int(kafka_broker.pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(6)  # the outage itself, not a wait for something
    finally:
        os.kill(pid, signal.SIGCONT)
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 60, 120)
    assert {r["outcome"] for r in results} == {"delivered"}
    assert await parked_of(deployment, tenant) == []


async def parked_of(deployment, tenant):
    """invalid-events records whose original bytes mention the tenant."""
    return await deployment.read_json(
        "invalid-events", lambda d: tenant in base64.b64decode(d.get("value") or "").decode("utf-8", "replace")
    )


# ------------------------------------------------------------------ retries on time, in parallel


async def test_a_retry_due_soon_is_not_held_back_by_one_due_later(deployment, worker, destinations):
    late, soon = unique("late"), unique("soon")
    destinations.http.hook_statuses[late] = [(503, {"Retry-After": "120"}, 0.0)]
    destinations.http.hook_statuses[soon] = [(503, {"Retry-After": "5"}, 0.0)]
    late_order, soon_order = keys_in_one_partition(2)
    for tenant, order_id in ((late, late_order), (soon, soon_order)):
        await configure(deployment, [worker], hook_integration(destinations, tenant))
        recipe = recipe_event(tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json(
            "orders", [order_event(tenant, [recipe["recipeId"]], orderId=order_id)], "orderId"
        )
        # In this order on deliveries-retry: the late retry ahead of the soon one, in one partition.
        await deployment.wait_json("deliveries-retry", of_tenant(tenant), 1)
    [retry] = await deployment.read_json("deliveries-retry", of_tenant(soon))
    [second] = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == soon and d["attempt"] == 2, 1, 60
    )
    late_by = (datetime.fromisoformat(second["startedAt"]) - datetime.fromisoformat(retry["dueAt"])).total_seconds()
    assert second["outcome"] == "delivered" and late_by < 10, late_by
    assert len(await deployment.read_json("delivery-results", of_tenant(late))) == 1


async def test_a_hundred_due_retries_run_side_by_side(kafka, destinations):
    deployment = new_deployment(
        kafka, **destinations.worker_env(), OUTBOUND_DELIVERY_CONCURRENCY="8", OUTBOUND_INTEGRATION_CONCURRENCY="8"
    )
    tenant = unique("many")
    # First attempts fail at once; the retries meet a destination that takes a second to answer.
    destinations.http.hook_responders[tenant] = lambda headers, seen: 500 if seen == 0 else (200, {}, 1.0)
    worker = await Worker(deployment, "many").start().ready()
    try:
        await configure(deployment, [worker], hook_integration(destinations, tenant))
        recipe = recipe_event(tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json(
            "orders", [order_event(tenant, [recipe["recipeId"]]) for _ in range(100)], "orderId"
        )
        results = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 100, 120
        )
        assert {r["attempt"] for r in results} == {2}
        assert destinations.http.hook_most_in_flight[tenant] == 8  # as many as the slots, never more
    finally:
        worker.stop()

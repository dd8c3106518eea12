"""Retries that wait hold nothing (`streams/stages/retry.py`, `streams/state/waiting_room.py`), against the real broker:
one tenant's retries waiting for a long Retry-After never delay another tenant's due retry, and a
waiting retry holds no commit of its partition."""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from tests.deployments import Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.partitioning import keys_in_one_partition
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def attempts(results: list[dict], tenant: str, attempt: int) -> list[dict]:
    return [r for r in results if r["tenant"] == tenant and r["attempt"] == attempt]


async def test_a_flood_of_waiting_retries_never_delays_another_tenant_s_due_one(kafka, destinations):
    # A worker that holds at most 20 messages at once: before, 20 waiting retries of one tenant were
    # all it read, and every other retry waited behind them for as long as they waited.
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_MAX_MESSAGES_IN_FLIGHT="20")
    worker = await Worker(deployment, "w").start().ready()
    try:
        flood, other = unique("flood"), unique("other")
        destinations.http.hook_responders[flood] = lambda _, seen: (
            (429, {"Retry-After": "20"}, 0.0) if not seen else 200
        )
        destinations.http.hook_statuses[other] = [500]
        for tenant in (flood, other):
            await configure(deployment, [worker], hook_integration(destinations, tenant, successNotificationList=""))
        recipes = {t: recipe_event(t) for t in (flood, other)}
        await deployment.produce_json("recipes", list(recipes.values()), "recipeId")
        await deployment.produce_json(
            "orders", [order_event(flood, [recipes[flood]["recipeId"]]) for _ in range(60)], "orderId"
        )
        await deployment.wait_json("deliveries-retry", of_tenant(flood), 60, timeout=90)

        await deployment.produce_json("orders", [order_event(other, [recipes[other]["recipeId"]])], "orderId")
        [retry] = await deployment.wait_json("deliveries-retry", of_tenant(other), 1, timeout=60)
        [second] = attempts(await deployment.wait_json("delivery-results", of_tenant(other), 2, timeout=60), other, 2)
        late = (datetime.fromisoformat(second["startedAt"]) - datetime.fromisoformat(retry["dueAt"])).total_seconds()
        assert second["outcome"] == "delivered" and late < 10, f"the due retry started {late:.1f}s after its due time"
        assert len(destinations.http.hook_requests[flood]) == 60, "the flood's retries ran before their due time"

        results = await deployment.wait_json("delivery-results", of_tenant(flood), 120, timeout=120)
        assert {r["outcome"] for r in attempts(results, flood, 2)} == {"delivered"}
        assert len(attempts(results, flood, 2)) == 60
    finally:
        worker.stop()


async def test_a_waiting_retry_holds_no_commit_and_still_runs_when_due(kafka, destinations):
    deployment = new_deployment(kafka, **destinations.worker_env())
    tenant = unique("hold")
    waiting_id, *later_ids = keys_in_one_partition(6)  # one deliveries-retry partition: keyed by orderId
    destinations.http.hook_responders[tenant] = retry_after_for_the_first(40)
    worker = Worker(deployment, "w").start()
    try:
        await worker.ready()
        await configure(deployment, [worker], hook_integration(destinations, tenant, successNotificationList=""))
        recipe = recipe_event(tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        waiting = order_event(tenant, [recipe["recipeId"]], orderId=waiting_id)
        await deployment.produce_json("orders", [waiting], "orderId")
        await deployment.wait_json("deliveries-retry", lambda d: d["orderId"] == waiting_id, 1, timeout=60)
        later = [order_event(tenant, [recipe["recipeId"]], orderId=o) for o in later_ids]
        await deployment.produce_json("orders", later, "orderId")
        delivered = await deployment.wait_json(
            "delivery-results", lambda d: d["orderId"] in later_ids and d["outcome"] == "delivered", 5, timeout=60
        )
        assert {d["attempt"] for d in delivered} == {2}
        # The later retries are behind the waiting one in its partition, and yet all are committed.
        await wait_for(lambda: deployment.committed_everything("deliveries-retry"), 20, "the retries committed")
        await wait_for(lambda: deployment.committed_everything("deliveries"), 20, "the first attempts committed")
        calls_before = len(destinations.http.hook_requests[tenant])

        worker.stop(signal.SIGKILL)
        worker = await Worker(deployment, "w").start().ready()
        results = await deployment.wait_json(
            "delivery-results", lambda d: d["orderId"] == waiting_id and d["outcome"] == "delivered", 1, timeout=120
        )
        [done] = results
        assert done["attempt"] == 2
        assert len(destinations.http.hook_requests[tenant]) == calls_before + 1, "later retries were done again"
    finally:
        worker.stop()


def retry_after_for_the_first(seconds: int):
    """The first POST of all is answered 429 with Retry-After; every other first POST 500, every retry 200."""
    answered: list[str] = []

    def answer(headers: dict[str, str], seen: int):
        if seen:
            return 200
        answered.append(headers.get("webhook-id", ""))
        return (429, {"Retry-After": str(seconds)}, 0.0) if len(answered) == 1 else 500

    return answer

"""Retries, the failure topic, notifications and delivery status, with the real broker and SMTP server."""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from tests.deployments import Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_event, recipe_with_assets, unique
from tests.integrations import hook_integration, integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def send_order(deployment, tenant, destinations=None, **order_fields):
    recipe = recipe_with_assets(destinations, tenant)[0] if destinations else recipe_event(tenant)
    order = order_event(tenant, [recipe["recipeId"]], **order_fields)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    return recipe, order


async def test_a_destination_that_fails_twice_then_succeeds(deployment, worker, destinations):
    tenant = unique("flaky")
    destinations.http.hook_statuses[tenant] = [500, 503]
    await configure(deployment, [worker], hook_integration(destinations, tenant))
    _, order = await send_order(deployment, tenant)
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 3)
    assert [(r["attempt"], r["outcome"]) for r in sorted(results, key=lambda r: r["attempt"])] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    inbox = destinations.smtp.inbox
    await wait_for(lambda: inbox.to(f"ok-{tenant}@ops.example"), 60, "the success notification")
    [success] = inbox.to(f"ok-{tenant}@ops.example")
    assert order["orderNumber"] in success["Subject"]
    assert inbox.to(f"alerts-{tenant}@ops.example") == []

    async def status():
        async with worker.api() as api:
            r = await api.get(f"/v1/status/orders/{order['orderId']}")
        return r.json() if r.status_code == 200 and r.json()["deliveries"][0]["attempts"] == 3 else None

    [entry] = (await wait_for(status, 60, "the delivery status"))["deliveries"]
    assert entry["status"] == "delivered after 3 attempts" and entry["lastError"] == "Zapier: hook answered HTTP 503"


async def test_a_destination_down_for_good(deployment, worker, destinations):
    tenant = unique("down")
    destinations.http.hook_statuses[tenant] = [500, 500, 500, 500]
    integration = hook_integration(destinations, tenant)
    await configure(deployment, [worker], integration)
    _, order = await send_order(deployment, tenant)
    [failed] = await deployment.wait_json("deliveries-failed", lambda d: d["command"]["tenant"] == tenant, 1, 90)
    assert [e["attempt"] for e in failed["command"]["errors"]] == [1, 2, 3]
    assert len(await deployment.read_json("delivery-results", of_tenant(tenant))) == 3
    inbox = destinations.smtp.inbox
    await wait_for(lambda: inbox.to(f"alerts-{tenant}@ops.example"), 60, "the failure notification")
    [mail] = inbox.to(f"alerts-{tenant}@ops.example")
    body = mail.get_payload(decode=True).decode()
    assert order["orderNumber"] in mail["Subject"] and order["orderNumber"] in body
    assert integration["id"] in body and "Production hook" in body and body.count("HTTP 500") == 3
    assert "Trigger Integrations" in body
    assert len(destinations.http.hook_requests[tenant]) == 3
    assert inbox.to(f"ok-{tenant}@ops.example") == []


async def test_a_refused_destination_fails_at_once_without_retries(deployment, worker, destinations):
    tenant = unique("refused")
    destinations.http.hook_statuses[tenant] = [404]
    await configure(deployment, [worker], hook_integration(destinations, tenant))
    await send_order(deployment, tenant)
    [failed] = await deployment.wait_json("deliveries-failed", lambda d: d["command"]["tenant"] == tenant, 1)
    assert len(failed["command"]["errors"]) == 1 and "404" in failed["command"]["errors"][0]["error"]


async def test_an_email_integration_sends_no_success_notification(deployment, worker, destinations):
    tenant = unique("mail")
    mail = integration(
        tenant, "email", {"to": f"shop-{tenant}@factory.example"}, successNotificationList=f"ok-{tenant}@ops.example"
    )
    await configure(deployment, [worker], mail)
    # A hook integration of the same tenant, delivered after the e-mail, proves notifications flowed.
    hook = hook_integration(destinations, tenant)
    await configure(deployment, [worker], hook)
    await send_order(deployment, tenant, destinations)
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 2)
    assert {r["outcome"] for r in results} == {"delivered"}
    inbox = destinations.smtp.inbox
    await wait_for(lambda: len(inbox.to(f"ok-{tenant}@ops.example")) >= 1, 60, "the hook's success notification")
    assert len(inbox.to(f"shop-{tenant}@factory.example")) == 1
    [only] = inbox.to(f"ok-{tenant}@ops.example")
    # The notice names the integration it is about: the hook's, never the e-mail one's.
    assert hook["id"] in only["Subject"] and mail["id"] not in only["Subject"]


async def test_a_slow_failing_destination_does_not_hold_up_healthy_ones(deployment, worker, destinations):
    tenant = unique("slow")
    destinations.http.hook_statuses[f"{tenant}-slow"] = [(500, {}, 3.0)] * 3
    slow = hook_integration(destinations, tenant)
    slow["settings"]["hook-url"] = f"{destinations.http.base}/hook/{tenant}-slow"
    slow["events"] = ["recipe.created"]
    healthy = hook_integration(destinations, tenant)
    await configure(deployment, [worker], slow)
    await configure(deployment, [worker], healthy)
    await deployment.produce_json("recipes", [recipe_event(tenant)], "recipeId")
    for _ in range(10):
        await send_order(deployment, tenant)
    retries = await wait_for(
        lambda: deployment.read_json("deliveries-retry", lambda d: d["integrationId"] == slow["id"]), 60, "a retry"
    )
    fine = await deployment.wait_json("delivery-results", lambda d: d["integrationId"] == healthy["id"], 10, 60)
    due = datetime.fromisoformat(min(retries, key=lambda d: d["attempt"])["dueAt"])
    assert all(datetime.fromisoformat(r["finishedAt"]) < due for r in fine), (due, [r["finishedAt"] for r in fine])


async def test_a_cancellation_drops_the_waiting_retry(deployment, worker, destinations):
    tenant = unique("cancel")
    # The first attempt fails with Retry-After, so the retry waits long enough for the cancellation.
    destinations.http.hook_statuses[tenant] = [(503, {"Retry-After": "8"}, 0.0)]
    integration = hook_integration(destinations, tenant, events=("order.created", "order.cancelled"))
    await configure(deployment, [worker], integration)
    recipe, order = await send_order(deployment, tenant)
    await deployment.wait_json("deliveries-retry", lambda d: d["tenant"] == tenant, 1)
    cancelled = order_event(
        tenant, [recipe["recipeId"]], "order.cancelled", orderId=order["orderId"], orderNumber=order["orderNumber"]
    )
    await deployment.produce_json("orders", [cancelled], "orderId")
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 3, 60)
    outcomes = {(r["eventType"], r["attempt"]): r["outcome"] for r in results}
    assert outcomes == {
        ("order.created", 1): "failed",
        ("order.cancelled", 1): "delivered",
        ("order.created", 2): "superseded",
    }
    created_calls = [b for _, b in destinations.http.hook_requests[tenant] if b"order.created" in b]
    assert len(created_calls) == 1


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
async def test_a_waiting_retry_survives_a_killed_or_stopped_worker(kafka, destinations, stop_signal):
    # SIGTERM is every rolling deploy: the retry must not be acknowledged as the stream stops.
    deployment = new_deployment(kafka, **{**destinations.worker_env(), "OUTBOUND_RETRY_DELAYS_SECONDS": "6,6"})
    tenant = unique("kill")
    destinations.http.hook_statuses[tenant] = [500]
    worker = await Worker(deployment, "victim").start().ready()
    try:
        await configure(deployment, [worker], hook_integration(destinations, tenant))
        await send_order(deployment, tenant)
        await deployment.wait_json("deliveries-retry", lambda d: d["tenant"] == tenant, 1)
        # Stopped once the first attempt is behind us (committed), while the retry waits in Kafka.
        await wait_for(lambda: deployment.committed_everything("deliveries"), 60, "the first attempt's commit")
        worker.stop(stop_signal)
    finally:
        worker.stop()
    again = await Worker(deployment, "victim").start().ready()
    try:
        results = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1, 120
        )
        assert results[0]["attempt"] == 2
        assert len(destinations.http.hook_requests[tenant]) == 2
    finally:
        again.stop()

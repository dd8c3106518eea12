"""One order's events in order, one slow tenant unable to starve the others, notifications that
outlast a relay outage, keys checked at start, and never a wrong file under a final name."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime

import orjson
import pytest
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet

from tests.deployments import OUTBOUND, Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_event, recipe_with_assets, unique
from tests.integrations import hook_integration, integration, sftp_settings
from tests.servers import Inbox, ShortWritingSftpServer, free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def event_type(body: bytes) -> str:
    return str(orjson.loads(body)["eventType"])


async def test_an_orders_events_reach_a_hook_in_order_and_the_cancellation_last(deployment, worker, destinations):
    tenant = unique("seq")
    # The first request (the "created" one) is answered slowly: were the three sent side by side, the
    # cancellation would be answered first and "created" last.
    requests = iter(range(1_000_000))
    destinations.http.hook_responders[tenant] = lambda headers, seen: (200, {}, 3.0) if next(requests) == 0 else 200
    events = ("order.created", "order.updated", "order.cancelled")
    await configure(deployment, [worker], hook_integration(destinations, tenant, events=events))
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    first = order_event(tenant, [recipe["recipeId"]])
    same = {"orderId": first["orderId"], "orderNumber": first["orderNumber"]}
    later = [order_event(tenant, [recipe["recipeId"]], kind, **same) for kind in events[1:]]
    await deployment.produce_json("orders", [first, *later], "orderId")
    results = await deployment.wait_json("delivery-results", of_tenant(tenant), 3)
    outcomes = {r["eventType"]: r["outcome"] for r in results}
    assert outcomes["order.cancelled"] == "delivered"
    answered = [event_type(b) for b in destinations.http.hook_answered[tenant]]
    assert answered[-1] == "order.cancelled", answered
    assert answered == [e for e in events if e in answered]  # never out of event order
    # What came after the cancellation was not sent at all: dropped, with a result that says so.
    assert {outcomes[e] for e in events if e not in answered} <= {"superseded"}


async def test_one_slow_tenant_cannot_hold_the_other_tenants_deliveries(kafka, destinations):
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_SHUTDOWN_GRACE_SECONDS="0")
    slow, quick = unique("hung"), unique("quick")
    destinations.http.hook_responders[slow] = lambda headers, seen: (200, {}, 30.0)
    worker = await Worker(deployment, "fair").start().ready()
    try:
        await configure(deployment, [worker], hook_integration(destinations, slow))
        await configure(deployment, [worker], hook_integration(destinations, quick))
        slow_recipe, quick_recipe = recipe_event(slow), recipe_event(quick)
        await deployment.produce_json("recipes", [slow_recipe, quick_recipe], "recipeId")
        slow_orders = [order_event(slow, [slow_recipe["recipeId"]]) for _ in range(20)]
        await deployment.produce_json("orders", slow_orders, "orderId")
        await wait_for(lambda: destinations.http.hook_in_flight[slow] >= 2, 60, "the hung tenant's deliveries to start")
        sent_at = datetime.now(UTC)
        await deployment.produce_json(
            "orders", [order_event(quick, [quick_recipe["recipeId"]]) for _ in range(5)], "orderId"
        )
        results = await deployment.wait_json("delivery-results", of_tenant(quick), 5, 60)
        slowest = max((datetime.fromisoformat(r["finishedAt"]) - sent_at).total_seconds() for r in results)
        assert slowest < 10, f"the other tenant waited {slowest:.1f}s behind a hung destination"
        assert destinations.http.hook_most_in_flight[slow] == 2  # its own integration's slots, no more
    finally:
        worker.stop(signal.SIGKILL)


async def test_a_notification_outlasts_a_relay_that_is_down_even_at_start(kafka, destinations):
    port = free_port()
    env = {**destinations.worker_env(), "OUTBOUND_SMTP_PORT": str(port)}
    deployment = new_deployment(kafka, **env)
    tenant = unique("relay")
    destinations.http.hook_statuses[tenant] = [404]  # fails for good at once: a failure notice is due
    worker = await Worker(deployment, "relay").start().ready()  # no relay listening: the worker starts anyway
    controller = None
    try:
        await configure(deployment, [worker], hook_integration(destinations, tenant))
        recipe = recipe_event(tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
        await deployment.wait_json("deliveries-failed", lambda d: d["command"]["tenant"] == tenant, 1)
        await wait_for(
            lambda: worker.log.read_text().count("notification not sent yet") >= 2, 60, "the notice to be retried"
        )
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        await wait_for(lambda: inbox.to(f"alerts-{tenant}@ops.example"), 90, "the failure notice once the relay is up")
        assert "notification lost" not in worker.log.read_text()
    finally:
        worker.stop()
        if controller is not None:
            controller.stop()


def test_a_secret_key_that_does_not_parse_stops_the_worker_at_start(tmp_path):
    result = subprocess.run(
        [OUTBOUND, "worker"],
        env={"PATH": "/usr/bin:/bin", "OUTBOUND_SECRET_KEYS": "not-a-fernet-key", "OUTBOUND_BROKER_WAIT_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "OUTBOUND_SECRET_KEYS" in result.stderr and "not a Fernet key" in result.stderr
    assert "not-a-fernet-key" not in result.stderr  # the key itself is never printed


async def test_a_secret_no_key_opens_yet_is_retried_until_the_key_arrives(kafka, destinations):
    deployment = new_deployment(kafka, **{**destinations.worker_env(), "OUTBOUND_RETRY_DELAYS_SECONDS": "12,12"})
    tenant = unique("rotate")
    new_key = Fernet.generate_key().decode()
    # The integration was sealed with the deployment's key; this worker has only a newer one so far.
    worker = await Worker(deployment, "old", OUTBOUND_SECRET_KEYS=new_key).start().ready()
    sftp = destinations.sftp
    config = integration(
        tenant, "sftp", sftp_settings(destinations, tenant), failureNotificationList=f"alerts-{tenant}@ops.example"
    )
    try:
        await configure(deployment, [worker], config)
        recipe, _ = recipe_with_assets(destinations, tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
        [first] = await deployment.wait_json("delivery-results", of_tenant(tenant), 1)
        assert first["outcome"] == "failed" and not first["final"], first
    finally:
        worker.stop()
    both = f"{new_key},{deployment.secret_key}"
    again = await Worker(deployment, "new", OUTBOUND_SECRET_KEYS=both).start().ready()
    try:
        delivered = await deployment.wait_json(
            "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1, 90
        )
        assert delivered[0]["attempt"] == 2
        assert (sftp.root / tenant).is_dir()
    finally:
        again.stop()


async def test_an_sftp_upload_that_arrives_short_never_takes_the_final_name(deployment, worker, destinations):
    tenant = unique("short")
    sftp = destinations.sftp
    ShortWritingSftpServer.short_writes.add(tenant)
    config = integration(tenant, "sftp", sftp_settings(destinations, tenant))
    try:
        await configure(deployment, [worker], config)
        recipe, _ = recipe_with_assets(destinations, tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
        [first] = await deployment.wait_json("delivery-results", of_tenant(tenant), 1)
        assert first["outcome"] == "failed" and "bytes on the server" in first["error"], first
        folder = sftp.root / tenant
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []  # no final name at all
    finally:
        ShortWritingSftpServer.short_writes.discard(tenant)
    # Once uploads arrive whole again, the retry puts every file in place.
    delivered = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1, 60
    )
    assert delivered[0]["attempt"] == 2
    assert len([p for p in (sftp.root / tenant).iterdir() if not p.name.startswith(".")]) == 6

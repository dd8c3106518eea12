"""Metrics, health and logs of a worker of its own (its counters count only this module's work).

The worker runs with test faults (tests/faults/sitecustomize.py) that a record on the order index
can set off: a blocked event loop, a dead view. The cases run in file order, the destructive last.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deployments import Worker, configure, new_deployment
from tests.events import order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.scrapes import scrape, value
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

FAULTS = str(Path(__file__).resolve().parent.parent / "faults")
POISON, BLOCK = "poison-" + unique(), "block-" + unique()
EXPORTED = {
    "outbound_deliveries",
    "outbound_delivery_attempt_duration_seconds",
    "outbound_delivered_bytes",
    "outbound_retries_waiting",
    "outbound_deliveries_failed",
    "outbound_notifications_sent",
    "outbound_notifications_lost",
    "outbound_invalid_events",
    "outbound_time_to_deliver_seconds",
    "outbound_consumer_lag",
    "outbound_table_recovery_in_progress",
    "outbound_late_deliveries",
}


@pytest.fixture(scope="module")
async def observed(kafka, destinations):
    deployment = new_deployment(kafka, **destinations.worker_env())
    worker = Worker(
        deployment,
        "observed",
        PYTHONPATH=FAULTS,
        TEST_FAULT_POISON_KEY=POISON,
        TEST_FAULT_BLOCK_KEY=BLOCK,
        TEST_FAULT_BLOCK_SECONDS="6",
        OUTBOUND_LIVENESS_LOOP_BLOCK_SECONDS="4",
    )
    await worker.start().ready()
    yield deployment, worker
    worker.stop()


async def health(worker, which: str) -> tuple[int, dict]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{worker.port}/health/{which}", timeout=10)
    return r.status_code, r.json()


async def test_metrics_move_with_deliveries_failures_and_invalid_events(observed, destinations):
    deployment, worker = observed
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=10)).text
    assert {f.name for f in text_string_to_metric_families(text)} >= EXPORTED

    before = await scrape(worker)
    good, bad = unique("good"), unique("bad")
    destinations.http.hook_statuses[good] = [500]  # one failed attempt first: still one delivered event
    destinations.http.hook_statuses[bad] = [400]
    good_hook, bad_hook = hook_integration(destinations, good), hook_integration(destinations, bad)
    for config in (good_hook, bad_hook):
        await configure(deployment, [worker], config)
    for tenant in (good, bad):
        recipe = recipe_event(tenant)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    await deployment.produce("orders", [(b"o-broken", b"{not json")])
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == good and d["outcome"] == "delivered", 1)
    await wait_for(lambda: len(destinations.smtp.inbox.to(f"alerts-{bad}@ops.example")) == 1, 60, "failure notice")
    await wait_for(lambda: len(destinations.smtp.inbox.to(f"ok-{good}@ops.example")) == 1, 60, "success notice")

    async def moved():
        after = await scrape(worker)
        return after if value(after, "outbound_notifications_sent_total", kind="success") > 0 else None

    after = await wait_for(moved, 30, "the notification counters")

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    zapier = {"integration_type": "zapier"}
    assert delta("outbound_deliveries_total", outcome="delivered", **zapier) == 1
    assert delta("outbound_deliveries_total", outcome="retrying", **zapier) == 1
    assert delta("outbound_deliveries_total", outcome="failed", **zapier) == 1
    assert delta("outbound_deliveries_failed_total", integration_id=bad_hook["id"], **zapier) == 1
    assert delta("outbound_delivery_attempt_duration_seconds_count", **zapier) == 3
    assert delta("outbound_delivered_bytes_total", **zapier) > 0
    assert delta("outbound_time_to_deliver_seconds_count", **zapier) == 1, "each delivered event once"
    assert delta("outbound_invalid_events_total", topic="orders", reason="not_json") == 1
    assert delta("outbound_notifications_sent_total", kind="success") == 1
    assert delta("outbound_notifications_sent_total", kind="failure") == 1
    assert value(after, "outbound_notifications_lost_total", kind="failure") == 0
    assert value(after, "outbound_table_recovery_in_progress") == 0
    lagging = {dict(labels)["topic"] for name, labels in after if name == "outbound_consumer_lag"}
    assert {"orders", "deliveries", "deliveries-retry"} <= lagging


async def test_logs_are_json_lines_with_ids_and_nothing_personal_or_secret(observed, destinations):
    deployment, worker = observed
    lines = worker.log.read_text().splitlines()
    parsed = [orjson.loads(line) for line in lines if line.strip()]  # every line is one JSON object
    delivered = [d for d in parsed if d["message"] == "delivered"]
    assert delivered and all({"deliveryId", "integrationId", "orderId", "recipeId"} <= set(d) for d in delivered)
    text = "\n".join(lines)
    customer = order_event("x", ["r"])["customer"]
    for personal in (customer["name"], customer["email"], deployment.secret_key, deployment.api_token):
        assert personal not in text
    assert not [d for d in parsed if d["logger"].startswith(("httpx", "httpcore", "azure"))]


async def test_readiness_drops_during_a_rebalance_and_liveness_holds(observed):
    deployment, worker = observed
    seen: list[tuple[int, tuple[str, ...]]] = []
    live_codes: set[int] = set()
    second = Worker(deployment, "joining").start()

    async def watch():
        # A rebalance of a running worker can be over in a tenth of a second: readiness is asked back
        # to back on one connection (a few milliseconds each), liveness every tenth time.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}", timeout=10) as client:
            for asked in itertools.count():
                r = await client.get("/health/ready")
                seen.append((r.status_code, tuple(r.json()["busy"])))
                if asked % 10 == 0:
                    live_codes.add((await client.get("/health/live")).status_code)

    watcher = asyncio.create_task(watch())
    try:
        await second.ready()
        await wait_for(lambda: seen and seen[-1][0] == 200 and any(c == 503 for c, _ in seen), 120, "ready again")
    finally:
        watcher.cancel()
        second.stop()
    busy = {reason for code, reasons in seen if code == 503 for reason in reasons}
    assert busy & {"rebalancing", "recovering"}, busy
    assert live_codes == {200}, "recovering and rebalancing are not reasons to restart"
    await wait_for(lambda: health_is(worker, "ready", 200), 120, "ready after the second worker left")


async def health_is(worker, which, code) -> bool:
    return (await health(worker, which))[0] == code


async def test_readiness_follows_the_broker_and_liveness_holds(observed, kafka_broker):
    _, worker = observed
    pid = int(kafka_broker.pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        _, body = await wait_for(lambda: _unready(worker), 60, "readiness to notice the broker is gone")
        assert any(b.startswith("broker unreachable") for b in body["busy"]), body
        assert await health_is(worker, "live", 200)
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for(lambda: health_is(worker, "ready", 200), 120, "ready again once the broker answers")


async def _unready(worker):
    code, body = await health(worker, "ready")
    return (code, body) if code == 503 and any(b.startswith("broker") for b in body["busy"]) else None


async def test_a_blocked_event_loop_fails_liveness(observed):
    deployment, worker = observed
    await deployment.produce("order-index", [(BLOCK.encode(), b'{"orderId": "o-block"}')])

    async def failing():
        try:
            code, body = await health(worker, "live")
        except httpx.HTTPError:
            return None  # no answer while the loop is blocked
        return body if code == 503 else None

    body = await wait_for(failing, 60, "liveness to fail after the block")
    assert any("event loop was blocked" in p for p in body["problems"]), body


async def test_a_dead_view_fails_readiness_and_liveness(observed):
    deployment, worker = observed
    await deployment.produce("order-index", [(POISON.encode(), b'{"orderId": "o-poison"}')])

    async def failing():
        code, body = await health(worker, "ready")
        return body if code == 503 and "the order index view stopped" in body["busy"] else None

    await wait_for(failing, 60, "readiness to report the dead view")
    await wait_for(lambda: "topic view stopped" in worker.log.read_text(), 30, "the view's failure in the log")
    for _ in range(3):  # the worker stays up to say so (a crash would be a restart without a reason)
        code, body = await health(worker, "live")
        assert code == 503 and any(p.startswith("the order index view stopped") for p in body["problems"]), body
    assert worker.proc.poll() is None

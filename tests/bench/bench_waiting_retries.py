"""P8 waiting retries: what 100,000 retries waiting for their due time cost a worker, and how late due
retries start meanwhile.

Retry commands are written straight onto `deliveries-retry` (as a failed attempt writes them), all
the waiting ones for one catch hook, due in an hour, then two hundred due a few seconds after they
are written, twenty for each of ten hooks. Figures: the worker's RSS once every waiting retry is
stored, beside the same worker idle before (budget 64 MiB of growth), and the due retries' lateness
(their attempt's `startedAt` minus `dueAt`), p50 / p99 / max.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psutil

from tests.bench.bench_latency import percentile
from tests.bench.harness import Bench, Row, produce_all, total_end
from tests.deployments import configure
from tests.events import unique
from tests.integrations import hook_integration

BUDGET_MIB = 64
DUE_INTEGRATIONS = 10
DUE_EACH = 20


def retry_command(tenant: str, integration_id: str, due: datetime, n: int) -> tuple[bytes, bytes]:
    order_id = f"o{uuid.uuid4().hex[:12]}"
    doc = {
        "deliveryId": str(uuid.uuid4()),
        "integrationId": integration_id,
        "integrationType": "zapier",
        "tenant": tenant,
        "eventType": "order.created",
        "eventId": str(uuid.uuid4()),
        "recipeId": f"r{n}",
        "orderId": order_id,
        "orderNumber": f"n{n}",
        "files": [],
        "attempt": 2,
        "dueAt": due.isoformat(),
        "errors": [{"attempt": 1, "at": datetime.now(UTC).isoformat(), "error": "Zapier: hook answered HTTP 500"}],
        "createdAt": datetime.now(UTC).isoformat(),
    }
    return order_id.encode(), orjson.dumps(doc)


async def bench_waiting_retries(bench: Bench) -> None:
    waiting = bench.sizes.waiting_retries
    deployment = bench.deployment()
    worker = await bench.worker(deployment, "p8")
    tenants = [unique("p8") for _ in range(DUE_INTEGRATIONS)]
    hooks = [
        hook_integration(bench.destinations, t, successNotificationList="", failureNotificationList="") for t in tenants
    ]
    for hook in hooks:
        await configure(deployment, [worker], hook)
    assert worker.proc is not None
    process = psutil.Process(worker.proc.pid)
    await asyncio.sleep(5.0)  # idle: the figure is the growth over a settled worker
    idle = process.memory_info().rss
    later = datetime.now(UTC) + timedelta(hours=1)
    topic = deployment.topic("deliveries-retry")
    started = time.monotonic()
    for first in range(0, waiting, 10_000):
        batch = [
            retry_command(tenants[0], hooks[0]["id"], later, n) for n in range(first, min(waiting, first + 10_000))
        ]
        await produce_all(bench.bootstrap, topic, batch)
    end = await total_end(bench.bootstrap, topic)
    deadline = time.monotonic() + 1800
    while not await deployment.committed_everything("deliveries-retry"):
        if time.monotonic() > deadline:
            raise TimeoutError("the waiting retries were not all stored")
        await asyncio.sleep(1.0)
    stored_in = time.monotonic() - started
    await asyncio.sleep(5.0)
    grown = (process.memory_info().rss - idle) / 2**20
    bench.report(
        Row(
            f"P8 {waiting:,} retries waiting for their due time: worker RSS growth",
            f"+{grown:.0f} MiB (stored in {stored_in:.0f} s, {end:,} records)",
            f"budget {BUDGET_MIB} MiB over the idle worker ({idle / 2**20:.0f} MiB)",
            f"{grown / BUDGET_MIB:.2f}",
            "1 run",
        )
    )

    due_at = datetime.now(UTC) + timedelta(seconds=5)
    due = [retry_command(t, h["id"], due_at, n) for n in range(DUE_EACH) for t, h in zip(tenants, hooks, strict=True)]
    await produce_all(bench.bootstrap, topic, due)
    results: list[dict] = []
    deadline = time.monotonic() + 600
    while len(results) < len(due):
        if time.monotonic() > deadline:
            raise TimeoutError("the due retries did not all run")
        await asyncio.sleep(1.0)
        results = await deployment.read_json("delivery-results", lambda d: d["tenant"] in tenants)
    late = sorted((datetime.fromisoformat(r["startedAt"]) - due_at).total_seconds() for r in results)
    bench.report(
        Row(
            f"P8 {len(due):,} retries of {DUE_INTEGRATIONS} hooks due at once among them: start after their due time",
            f"p50 {percentile(late, 50):.2f} s, p99 {percentile(late, 99):.2f} s, max {late[-1]:.2f} s",
            "target: within 5 s",
            f"{late[-1] / 5:.2f}",
            "1 run",
            note="the waiting ones are all for one of the hooks; every hook answers at once",
        )
    )
    bench.stop_workers()

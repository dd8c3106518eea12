"""P7 restart: a worker SIGKILLed under a steady load and started again at once, with and without
static group membership (OUTBOUND_INSTANCE_ID), and the time a worker takes to be ready again.

One run, in a fresh deployment with the production session timeout (60 s; the bench's servers set
10 s for the tests): orders at a steady rate (P2's 50/s) to a local-directory integration; 40 % of the
way in the worker is SIGKILLed and started again at once with the same data directory, the same web
port and (in the static run) the same instance id. Delivery times are the `finishedAt` of the
delivery results (stamped by the worker once every file and the manifest are in place), taken once
every order has one: (a) seconds from the kill to the first delivery after it, (b) the longest gap
between consecutive deliveries of the run. Then, on the same deployment, the worker is stopped
cleanly (SIGTERM) and started again with its data directory kept, and once more with it wiped:
seconds from the process start to /health/ready answering 200. The comparison is the same run
without an instance id (a new member: its partitions wait for the killed member's session to end).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from datetime import datetime
from itertools import pairwise
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from service.settings import Settings
from tests.bench.bench_latency import paced
from tests.bench.harness import Bench, Row, median, total_end, warmed_local_tenant
from tests.deployments import Deployment, Worker
from tests.events import order_event
from tests.waiting import wait_for

SESSION_TIMEOUT = Settings.model_fields["broker_session_timeout_seconds"].default  # 60 s, the production default
KILL_AT = 0.4  # of the run's seconds


async def started_ready(worker: Worker) -> float:
    """Seconds from starting the worker's process to its readiness probe answering 200."""
    started = time.monotonic()
    worker.start()
    await worker.ready(600)
    return time.monotonic() - started


async def restart_run(bench: Bench, static: bool) -> dict[str, float]:
    deployment = bench.deployment(OUTBOUND_BROKER_SESSION_TIMEOUT_SECONDS=f"{SESSION_TIMEOUT:g}")
    env = {"OUTBOUND_INSTANCE_ID": "restart-0"} if static else {}
    worker = Worker(deployment, "restart", **env)
    bench.workers.append(worker)
    try:
        empty = await started_ready(worker)
        figures = await killed_under_load(bench, deployment, worker)
        worker.stop()
        kept = await started_ready(worker)
        worker.stop()
        shutil.rmtree(deployment.workdir / f"{worker.name}-data")
        wiped = await started_ready(worker)
        return {**figures, "empty": empty, "kept": kept, "wiped": wiped}
    finally:
        worker.stop()
        bench.workers.remove(worker)


async def killed_under_load(bench: Bench, deployment: Deployment, worker: Worker) -> dict[str, float]:
    rate, seconds = bench.sizes.latency_rate, bench.sizes.restart_seconds
    count = round(rate * seconds)
    tenant, recipe = await warmed_local_tenant(bench, deployment, [worker], "rst")
    orders = [order_event(tenant, [recipe["recipeId"]]) for _ in range(count)]
    sent: dict[str, float] = {}
    results_topic = deployment.topic("delivery-results")
    before = await total_end(bench.bootstrap, results_topic)
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=0)
    await producer.start()
    topic = deployment.topic("orders")
    kill: dict[str, float] = {}

    async def send(i: int) -> None:
        order = orders[i]
        sent[order["orderId"]] = time.time()
        await (await producer.send(topic, key=order["orderId"].encode(), value=orjson.dumps(order)))

    async def kill_and_start_again() -> None:
        await asyncio.sleep(KILL_AT * seconds)
        kill["sent"] = len(sent)
        kill["at"], kill["mono"] = time.time(), time.monotonic()
        worker.stop(signal.SIGKILL)
        worker.start()  # same data directory, same port, same environment (and instance id, if any)
        await worker.ready(600)
        kill["ready"] = time.monotonic() - kill["mono"]

    try:
        restarting = asyncio.create_task(kill_and_start_again())
        await paced(count, rate, send)
        await restarting
    finally:
        await producer.stop()

    async def every_order_delivered() -> list[dict[str, Any]] | None:
        if await total_end(bench.bootstrap, results_topic) < before + count:
            return None
        found = await deployment.read_json("delivery-results", lambda d: d.get("orderId") in sent)
        delivered = [r for r in found if r["outcome"] == "delivered"]
        return delivered if {r["orderId"] for r in delivered} >= sent.keys() else None

    delivered = await wait_for(every_order_delivered, 900, "every order of the restart run delivered", every=1.0)
    times = sorted(datetime.fromisoformat(r["finishedAt"]).timestamp() for r in delivered)
    after = [t for t in times if t > kill["at"]]
    return {
        "first": after[0] - kill["at"],
        "gap": max(b - a for a, b in pairwise(times)),
        "ready": kill["ready"],
        "sent_before": kill["sent"],
        "delivered_before": len(times) - len(after),
        # At least once: what was done before the kill but not yet committed is done again after it,
        # and orders re-read upstream produce their delivery command again.
        "again": len(times) - len(sent),
    }


def _both(static: list[float], plain: list[float]) -> str:
    n = len(static)
    return (
        f"{n} run{'s' if n > 1 else ''}: id "
        + ", ".join(f"{v:.1f}" for v in static)
        + " / no id "
        + ", ".join(f"{v:.1f}" for v in plain)
    )


async def bench_restart(bench: Bench) -> None:
    """P7: SIGKILL and restart at once under 50 orders/s, with and without an instance id, each in a
    fresh deployment; then time to ready after a clean stop with the data directory kept and wiped."""
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for run in range(bench.sizes.runs):
        for static in (False, True):
            r = await restart_run(bench, static)
            runs[static].append(r)
            print(
                f"  run {run + 1} {'with' if static else 'without'} OUTBOUND_INSTANCE_ID: kill → first delivery "
                f"{r['first']:.1f} s, longest gap {r['gap']:.1f} s, kill → ready {r['ready']:.1f} s "
                f"({r['delivered_before']:.0f} of {r['sent_before']:.0f} orders sent before the kill were delivered "
                f"by then; {r['again']:.0f} deliveries beyond one per order); clean restart ready in "
                f"{r['kept']:.1f} s kept, {r['wiped']:.1f} s wiped (first start {r['empty']:.1f} s)",
                flush=True,
            )
    rate, seconds = bench.sizes.latency_rate, bench.sizes.restart_seconds
    load = (
        f"{rate:.0f} orders/s for {seconds:.0f} s to a local-directory integration, the worker SIGKILLed at "
        f"{KILL_AT * seconds:.0f} s and started again at once (same data directory and port)"
    )
    note = (
        f"each run a fresh deployment, session timeout {SESSION_TIMEOUT:g} s (the default); 'id': "
        "OUTBOUND_INSTANCE_ID set (static member), 'no id': a new member on every start"
    )

    def row(figure: str, key: str) -> None:
        s, p = [r[key] for r in runs[True]], [r[key] for r in runs[False]]
        bench.report(
            Row(
                figure,
                f"with OUTBOUND_INSTANCE_ID: {median(s):.1f} s",
                f"without: {median(p):.1f} s",
                f"{median(s) / median(p):.2f}",
                _both(s, p),
                note=note,
            )
        )

    row(f"P7 {load}: kill → first delivery after it", "first")
    row("P7 same: longest gap between consecutive deliveries", "gap")
    row("P7 same: kill → the restarted worker's /health/ready", "ready")
    row("P7 after it, clean stop (SIGTERM), data directory kept: process start → ready", "kept")
    row("P7 same, data directory wiped: process start → ready", "wiped")

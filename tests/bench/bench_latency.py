"""P2 latency: an order event to its files in a local-directory integration, at a steady rate.

Each order is sent at its time on the schedule; its latency runs from just before the send to the
`finishedAt` of its delivery result (stamped by the worker once the destination has every file, the
manifest included). The kernel's file times are too coarse (one tick) for a figure of milliseconds.
Baseline: the same number of messages at the same rate through one bare produce->consume round trip.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tests.bench.harness import (
    Bench,
    Row,
    assigned_consumer,
    create_topics,
    median,
    poll_until,
    total_end,
    warmed_local_tenant,
)
from tests.deployments import Deployment
from tests.events import order_event, unique


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def paced(count: int, rate: float, send: Any) -> None:
    """Call `send(i)` at i / rate seconds from now, never bunching late sends into a burst of more than one."""
    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)


async def service_run(bench: Bench, deployment: Deployment, workers: list[Any], count: int, rate: float) -> list[float]:
    tenant, recipe = await warmed_local_tenant(bench, deployment, workers, "lat")
    orders = [order_event(tenant, [recipe["recipeId"]]) for _ in range(count)]
    sent: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=0)
    await producer.start()
    topic = deployment.topic("orders")
    results_topic = deployment.topic("delivery-results")
    before = await total_end(bench.bootstrap, results_topic)

    async def send(i: int) -> None:
        order = orders[i]
        sent[order["orderId"]] = time.time()
        await (await producer.send(topic, key=order["orderId"].encode(), value=orjson.dumps(order)))

    try:
        await paced(count, rate, send)
    finally:
        await producer.stop()

    async def all_done() -> bool:
        return await total_end(bench.bootstrap, results_topic) >= before + count

    await poll_until(all_done, 300, "every latency delivery", every=0.2)
    results = await deployment.read_json("delivery-results", lambda d: d.get("orderId") in sent)
    finished = {
        r["orderId"]: (datetime.fromisoformat(r["finishedAt"]).timestamp() - sent[r["orderId"]]) * 1000
        for r in results
        if r["outcome"] == "delivered"
    }
    # In the order they were sent: whether latency grows along the run shows a growing backlog.
    return [finished[o["orderId"]] for o in orders if o["orderId"] in finished]


async def bare_run(bench: Bench, count: int, rate: float) -> list[float]:
    topic = unique("bare.rtt.")
    await create_topics(bench.bootstrap, [topic])
    consumer = await assigned_consumer(bench.bootstrap, [topic], fetch_max_wait_ms=500)
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=0)
    await producer.start()
    latencies: list[float] = []

    async def receive() -> None:
        while len(latencies) < count:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                now = time.time()
                latencies.extend((now - float(r.value)) * 1000 for r in records)

    async def send(i: int) -> None:
        await (await producer.send(topic, key=str(i).encode(), value=repr(time.time()).encode()))

    try:
        receiving = asyncio.create_task(receive())
        await paced(count, rate, send)
        await asyncio.wait_for(receiving, 60)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


async def bench_latency(bench: Bench) -> None:
    """P2: p50 and p99 of order -> files at a steady rate, beside a bare round trip. Also at a fifth of
    the rate: when the worker cannot keep up with the full rate, the first figure is mostly queueing.
    And at four times the rate (200/s), with whether the backlog grows: the median latency of the last
    quarter of the orders against the first quarter's (about 1 when the worker keeps up)."""
    deployment = bench.deployment()
    worker = await bench.worker(deployment, "latency")
    try:
        for rate, count in (
            (bench.sizes.latency_rate, bench.sizes.latency_orders),
            (bench.sizes.latency_rate * 4, bench.sizes.latency_orders * 4),
            (bench.sizes.latency_rate / 5, max(50, bench.sizes.latency_orders // 5)),
        ):
            await latency_at(bench, deployment, worker, rate, count)
    finally:
        bench.stop_workers()


async def latency_at(bench: Bench, deployment: Deployment, worker: Any, rate: float, count: int) -> None:
    service: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    growth: list[float] = []
    for run in range(bench.sizes.runs):
        spies = bench.profile([worker], f"latency-{rate:.0f}-run{run + 1}") if run == 0 else []
        try:
            s = await service_run(bench, deployment, [worker], count, rate)
        finally:
            bench.end_profile(spies)
        b = await bare_run(bench, count, rate)
        service.append((percentile(s, 50), percentile(s, 99)))
        bare.append((percentile(b, 50), percentile(b, 99)))
        quarter = max(1, len(s) // 4)
        growth.append(percentile(s[-quarter:], 50) / percentile(s[:quarter], 50))
        print(
            f"  run {run + 1} at {rate:.0f}/s: service p50 {service[-1][0]:.1f} ms p99 {service[-1][1]:.1f} ms "
            f"({len(s)} orders, mean {statistics.fmean(s):.1f}, last/first quarter p50 {growth[-1]:.2f}); "
            f"bare p50 {bare[-1][0]:.2f} ms p99 {bare[-1][1]:.2f} ms",
            flush=True,
        )
    s50, s99 = median([s[0] for s in service]), median([s[1] for s in service])
    b50, b99 = median([b[0] for b in bare]), median([b[1] for b in bare])
    bench.report(
        Row(
            f"P2 order event → its files in a local-directory integration, {rate:.0f} orders/s",
            f"p50 {s50:.1f} ms, p99 {s99:.1f} ms; last/first quarter p50 {median(growth):.2f}",
            f"produce→consume round trip: p50 {b50:.2f} ms, p99 {b99:.2f} ms",
            f"{s50 / b50:.1f}x / {s99 / b99:.1f}x",
            "p99 runs " + ", ".join(f"{s[1]:.1f}" for s in service) + " / " + ", ".join(f"{b[1]:.2f}" for b in bare),
        )
    )

"""What every benchmark shares: one broker and the destination servers for the whole run, fresh
deployments on it, medians, and the table the run prints.

Benchmarks measure; they never assert on time. Each figure is taken beside its bare baseline in the
same run on the same broker, so the ratio holds even when other work shares the machine.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from cryptography.fernet import Fernet

from service.kafka_admin import end_offsets
from tests.deployments import Deployment, Worker, configure
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import hook_integration, local_integration
from tests.servers import Destinations


@dataclass
class Sizes:
    """How much each benchmark moves; `--quick` takes the small column."""

    throughput_events: int  # recipes + orders (half each)
    latency_orders: int
    latency_rate: float  # orders per second
    big_file_mib: int
    email_mib: int
    recovery_recipes: int
    runs: int
    scaleout_deliveries: int  # P6 I/O-bound: hook deliveries per run
    restart_seconds: float  # P7: seconds of orders at latency_rate, the worker killed 40 % of the way in
    waiting_retries: int = 100_000  # P8: retries waiting for their due time

    @staticmethod
    def full() -> Sizes:
        return Sizes(10_000, 1_000, 50.0, 1024, 15, 200_000, 3, scaleout_deliveries=2_400, restart_seconds=40.0)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(
            2_000, 250, 50.0, 256, 15, 20_000, 3, scaleout_deliveries=720, restart_seconds=20.0, waiting_retries=20_000
        )


@dataclass
class Row:
    figure: str
    service: str
    baseline: str
    ratio: str
    runs: str
    note: str = ""


@dataclass
class Bench:
    """The run's shared servers and the rows the benchmarks report."""

    broker: Any
    destinations: Destinations
    sizes: Sizes
    rows: list[Row] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    profile_dir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return str(self.broker.bootstrap)

    def deployment(self, **extra_env: str) -> Deployment:
        deployment = Deployment(
            bootstrap=self.bootstrap,
            prefix=unique("b") + ".",
            workdir=Path(tempfile.mkdtemp(prefix="outbound-bench-")),
            secret_key=Fernet.generate_key().decode(),
            extra_env={
                **self.destinations.worker_env(),
                # The service's own info lines are not what is measured; production runs at info too,
                # but a benchmark should show the pipeline, so both levels are available (see README).
                "OUTBOUND_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "info"),
                **extra_env,
            },
        )
        deployment.cli("topics", "apply")
        return deployment

    async def worker(self, deployment: Deployment, name: str, **env: str) -> Worker:
        worker = Worker(deployment, name, **env).start()
        self.workers.append(worker)
        return await worker.ready(180)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def profile(self, workers: list[Worker], name: str) -> list[subprocess.Popen[bytes]]:
        """py-spy on each worker (collapsed stacks, idle frames left out) while a figure is taken."""
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).parent / "py-spy")
        return [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(w.proc.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(self.profile_dir / f"{name}-{w.name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for w in workers
            if w.proc is not None
        ]

    @staticmethod
    def end_profile(spies: list[subprocess.Popen[bytes]]) -> None:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(60)

    def report(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.figure}: service {row.service} | baseline {row.baseline} | ratio {row.ratio} | {row.runs}")


async def raw_feed_and_orders_hook(bench: Bench, deployment: Deployment, workers: list[Worker], prefix: str) -> str:
    """A new tenant whose one catch hook takes recipes (raw feed) and orders, no notifications; every
    worker routes with it. Returns the tenant."""
    tenant = unique(prefix)
    hook = hook_integration(
        bench.destinations,
        tenant,
        events=("recipe.created", "order.created"),
        successNotificationList="",
        failureNotificationList="",
    )
    await configure(deployment, workers, hook)
    return tenant


async def warmed_local_tenant(
    bench: Bench, deployment: Deployment, workers: list[Any], prefix: str
) -> tuple[str, dict]:
    """A tenant with a local-directory integration and one recipe, its first order delivered: what a
    timed run of orders needs in place before its clock starts."""
    tenant = unique(prefix)
    await configure(deployment, workers, local_integration(tenant, ["order.created"]))
    recipe, _ = recipe_with_assets(bench.destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    warm = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("orders", [warm], "orderId")
    await deployment.wait_json("delivery-results", lambda d: d.get("orderId") == warm["orderId"], 1, 120)
    return tenant, recipe


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def runs_text(values: list[float], fmt: str = "{:.0f}") -> str:
    return "runs " + ", ".join(fmt.format(v) for v in values)


def table(rows: list[Row]) -> str:
    head = ["figure", "service", "bare baseline, same run", "ratio", "runs (service / baseline)"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for r in rows:
        lines.append(f"| {r.figure} | {r.service} | {r.baseline} | {r.ratio} | {r.runs} |")
    notes = [f"- {r.figure}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


async def total_end(bootstrap: str, topic: str) -> int:
    return sum((await end_offsets({"bootstrap_servers": bootstrap}, topic)).values())


async def poll_until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.05) -> float:
    """Wait for `condition`; returns the monotonic time it first held."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def create_topics(bootstrap: str, names: list[str], partitions: int = 6) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def produce_all(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], **partitions: Any) -> None:
    """Send everything as fast as the client batches it, and wait for every acknowledgement."""
    import asyncio

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = []
        for key, value in items:
            futures.append(await producer.send(topic, key=key, value=value, partition=partitions.get("partition")))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def assigned_consumer(bootstrap: str, topics: list[str], **options: Any) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of `topics`, from the beginning (no rebalance to wait for)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await consumer.start()
    tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    if not tps:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer

"""P5 recovery: seconds from starting a worker to ready when its recipes table holds many recipes,
with its data directory wiped (the table is rebuilt from its changelog) and kept (RocksDB reopened,
only what it missed is read).

The recipes are written straight onto the table's changelog, as the worker itself writes them (JSON
key, the validated recipe as JSON value, the partition of the recipe's source partition): through
the pipeline 200,000 recipes would take most of the run to enter. Baseline: a bare consumer reading
the same changelog end to end. The worker's figure includes its own start (imports, joining the
group, the web server), shown separately as the start of a worker with empty tables, and the time
the worker's bulk restore took (from its log, service/bulk_recovery.py).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from service.catalog import changelog_name
from tests.bench.harness import Bench, Row, median, runs_text
from tests.deployments import ROOT, Deployment, Worker
from tests.events import recipe_event, unique


async def fill_changelog(bench: Bench, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    tenant = unique("rec")
    try:
        futures = []
        for _ in range(count):
            recipe = recipe_event(tenant)
            rid = recipe["recipeId"]
            partition = (murmur2(rid.encode()) & 0x7FFFFFFF) % 6
            futures.append(
                await producer.send(topic, key=orjson.dumps(rid), value=orjson.dumps(recipe), partition=partition)
            )
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def bulk_restores(log: str) -> tuple[int, float]:
    """Records and seconds of the worker's bulk table restores (service/bulk_recovery.py) in `log`."""
    records, seconds = 0, 0.0
    for line in log.splitlines():
        if line.startswith("{") and '"table partitions' in line:
            doc = orjson.loads(line)
            records += doc.get("records", 0)
            seconds += doc.get("seconds", 0.0)
    return records, seconds


async def time_to_ready(bench: Bench, deployment: Deployment, name: str, wipe: bool) -> float:
    worker = Worker(deployment, name)
    data = deployment.workdir / f"{name}-data"
    if wipe:
        shutil.rmtree(data, ignore_errors=True)
    logged = worker.log.stat().st_size if worker.log.exists() else 0
    started = time.monotonic()
    worker.start()
    bench.workers.append(worker)
    try:
        await worker.ready(1800)
        ready = time.monotonic() - started
    finally:
        worker.stop()
        bench.workers.remove(worker)
    with worker.log.open("rb") as log:
        log.seek(logged)
        records, seconds = bulk_restores(log.read().decode(errors="replace"))
    state = "wiped" if wipe else "kept"
    print(f"    {state}: ready in {ready:.1f} s, {records:,} records restored in bulk in {seconds:.1f} s")
    return ready


def bare_read(bench: Bench, topic: str) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bare", "changelog", bench.bootstrap, topic],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the bare changelog reader failed: {done.stderr[-2000:]}")
    out = done.stdout.split()
    return float(out[0]), int(out[1])


async def bench_recovery(bench: Bench) -> None:
    """P5: time to ready with the data directory wiped and kept, beside a bare read of the changelog."""
    count = bench.sizes.recovery_recipes
    deployment = bench.deployment()
    changelog = changelog_name(f"{deployment.prefix}app", "recipes")
    empty = await time_to_ready(bench, deployment, "empty", wipe=True)
    print(f"  a worker with empty tables is ready in {empty:.1f} s; writing {count:,} recipes", flush=True)
    await fill_changelog(bench, changelog, count)
    wiped, kept, bare = [], [], []
    loop = asyncio.get_running_loop()
    for run in range(bench.sizes.runs):
        wiped.append(await time_to_ready(bench, deployment, "recovery", wipe=True))
        kept.append(await time_to_ready(bench, deployment, "recovery", wipe=False))
        seconds, read = await loop.run_in_executor(None, bare_read, bench, changelog)
        assert read == count, f"the changelog holds {read} records, expected {count}"
        bare.append(seconds)
        print(
            f"  run {run + 1}: wiped {wiped[-1]:.1f} s, kept {kept[-1]:.1f} s, bare read {bare[-1]:.1f} s", flush=True
        )
    note = f"worker start with empty tables: {empty:.1f} s (included in both service figures)"
    bench.report(
        Row(
            f"P5 {count:,} recipes, data directory wiped → ready",
            f"{median(wiped):.1f} s",
            f"bare consumer reads the changelog: {median(bare):.1f} s",
            f"{median(wiped) / median(bare):.1f}x",
            f"{runs_text(wiped, '{:.1f}')} / {runs_text(bare, '{:.1f}')}",
            note=note,
        )
    )
    bench.report(
        Row(
            f"P5 {count:,} recipes, data directory kept → ready",
            f"{median(kept):.1f} s",
            f"bare consumer reads the changelog: {median(bare):.1f} s",
            f"{median(kept) / median(bare):.1f}x",
            f"{runs_text(kept, '{:.1f}')} / {runs_text(bare, '{:.1f}')}",
            note=note,
        )
    )

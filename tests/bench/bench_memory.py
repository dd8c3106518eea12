"""P4 memory: a worker's growth (peak RSS minus RSS before the order) while it delivers one large
production file to S3 and SFTP at once, and one e-mail with a large attachment.

There is no bare baseline for memory: the reference is the budget (64 MiB of growth), and the ratio
is growth / budget. The file is generated and streamed by the asset host, never held by the bench.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psutil

from tests.bench.harness import Bench, Row, median
from tests.deployments import Deployment, Worker, configure
from tests.events import big_file_recipe, order_event, unique
from tests.integrations import integration, s3_settings, sftp_settings
from tests.stores import make_bucket, s3_client

BUDGET_MIB = 64


async def grow(
    bench: Bench, deployment: Deployment, worker: Worker, tenant: str, size: int, expected: int
) -> tuple[float, float]:
    """Send one order of a recipe with one `size`-byte file; the worker's growth in MiB and the seconds taken."""
    recipe = big_file_recipe(bench.destinations, tenant, size)
    assert worker.proc is not None
    process = psutil.Process(worker.proc.pid)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await asyncio.sleep(1.0)  # the recipe stored (no integration takes the raw feed): measure the order alone
    baseline = peak = process.memory_info().rss
    started = time.monotonic()
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    seen: list[dict[str, Any]] = []
    deadline = started + 1800
    while len(seen) < expected:
        for _ in range(20):
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)
        seen = await deployment.read_json("delivery-results", lambda d: d["tenant"] == tenant)
        if time.monotonic() > deadline:
            raise TimeoutError("large deliveries did not finish")
    elapsed = time.monotonic() - started
    outcomes = {r["outcome"] for r in seen}
    assert outcomes == {"delivered"}, [r.get("error") for r in seen]
    return (peak - baseline) / 2**20, elapsed


async def bench_memory(bench: Bench) -> None:
    """P4: worker growth for a large file to S3 and SFTP, and for an e-mail with a large attachment."""
    size = bench.sizes.big_file_mib * 2**20
    email_size = bench.sizes.email_mib * 2**20
    deployment = bench.deployment()
    worker = await bench.worker(deployment, "memory")
    big: list[tuple[float, float]] = []
    mail: list[tuple[float, float]] = []
    try:
        for run in range(bench.sizes.runs):
            tenant = unique("mem")
            bucket = f"mem-{uuid.uuid4().hex[:12]}"
            await make_bucket(bench.destinations, bucket)
            for config in (
                integration(tenant, "s3", s3_settings(bench.destinations, bucket)),
                integration(tenant, "sftp", sftp_settings(bench.destinations, tenant)),
            ):
                await configure(deployment, [worker], config)
            big.append(await grow(bench, deployment, worker, tenant, size, 2))
            await _clean(bench, bucket, tenant)
            mail_tenant = unique("mail")
            await configure(deployment, [worker], integration(mail_tenant, "email", {"to": "bench@factory.example"}))
            mail.append(await grow(bench, deployment, worker, mail_tenant, email_size, 1))
            bench.destinations.smtp.inbox.messages.clear()
            print(
                f"  run {run + 1}: {bench.sizes.big_file_mib} MiB to S3+SFTP grew {big[-1][0]:.0f} MiB "
                f"in {big[-1][1]:.0f} s; {bench.sizes.email_mib} MiB e-mail grew {mail[-1][0]:.0f} MiB",
                flush=True,
            )
    finally:
        bench.stop_workers()
    for what, values in (
        (f"P4 {bench.sizes.big_file_mib} MiB production file to S3 and SFTP at once", big),
        (f"P4 {bench.sizes.email_mib} MiB attachment by e-mail", mail),
    ):
        growth = [v[0] for v in values]
        bench.report(
            Row(
                what,
                f"+{median(growth):.0f} MiB worker RSS ({median([v[1] for v in values]):.0f} s)",
                f"budget {BUDGET_MIB} MiB",
                f"{median(growth) / BUDGET_MIB:.2f}",
                "runs " + ", ".join(f"+{g:.0f}" for g in growth),
            )
        )


async def _clean(bench: Bench, bucket: str, tenant: str) -> None:
    """Free the emulators' copies (moto keeps objects in memory) so the next run starts alike."""
    async with s3_client(bench.destinations) as s3:
        for item in (await s3.list_objects_v2(Bucket=bucket)).get("Contents", []):
            await s3.delete_object(Bucket=bucket, Key=item["Key"])
    for path in (bench.destinations.sftp.root / tenant).glob("*"):
        path.unlink()

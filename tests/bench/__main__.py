"""`scripts/bench [--quick] [--runs N] [NAME...]`: run the benchmarks (all, or those named) on one
broker and one set of destination servers started for the run, and print the table.

Names: throughput (P1), latency (P2), memory (P4), recovery (P5), scaleout (P6: I/O-bound, then
CPU-bound), restart (P7: SIGKILL and restart with and without OUTBOUND_INSTANCE_ID, time to ready),
retries (P8: 100,000 waiting retries: memory, and how late due ones start), records (Kafka records
consumed and produced per recipe and per order).
`--runs 1` brings P7 to one run per variant (each run without an instance id waits out the 60 s
session timeout: about 80 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from tests.bench.bench_latency import bench_latency
from tests.bench.bench_memory import bench_memory
from tests.bench.bench_records import bench_records
from tests.bench.bench_recovery import bench_recovery
from tests.bench.bench_restart import bench_restart
from tests.bench.bench_throughput import bench_scaleout, bench_throughput
from tests.bench.bench_waiting_retries import bench_waiting_retries
from tests.bench.harness import Bench, Row, Sizes, table
from tests.deployments import load_local_kafka
from tests.servers import start_destinations, stop_destinations

BENCHMARKS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "throughput": bench_throughput,
    "latency": bench_latency,
    "records": bench_records,
    "memory": bench_memory,
    "recovery": bench_recovery,
    "scaleout": bench_scaleout,
    "restart": bench_restart,
    "retries": bench_waiting_retries,
}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    load = os.getloadavg()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, "
        f"{java}; load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    parser.add_argument("--runs", type=int, help="runs per figure (median); default 3")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the workers of the first throughput run")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.runs:
        sizes.runs = args.runs
    names = args.names or list(BENCHMARKS)
    print(f"machine: {machine()}", flush=True)
    local_kafka = load_local_kafka()
    home = Path(tempfile.mkdtemp(prefix="outbound-bench-kafka-"))
    broker = local_kafka.Broker(home, local_kafka.free_port(), local_kafka.free_port())
    started = time.monotonic()
    local_kafka.start(broker)  # before the loop: it waits for the broker with a loop of its own
    try:
        rows = asyncio.run(run(broker, sizes, names, args.profile))
    finally:
        local_kafka.stop(broker)
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"\n{'quick' if args.quick else 'full'} run, {time.monotonic() - started:.0f} s, load average now "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print(table(rows))


async def run(broker: object, sizes: Sizes, names: list[str], profile: Path | None) -> list[Row]:
    destinations = await start_destinations()
    bench = Bench(broker, destinations, sizes, profile_dir=profile)
    try:
        for name in names:
            print(f"{name}:", flush=True)
            await BENCHMARKS[name](bench)
    finally:
        bench.stop_workers()
        await stop_destinations(destinations)
        shutil.rmtree(destinations.sftp.root, ignore_errors=True)
    return bench.rows


if __name__ == "__main__":
    main()

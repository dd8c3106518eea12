"""P1 throughput and P6 scale-out.

P1, one run: N/2 recipes and N/2 orders (one line each, to those recipes) for a tenant with one catch
hook subscribed to both events; timed from the first send to (a) the last delivery command on
`deliveries` and (b) the hook's last POST. Baselines: a bare consume->transform->produce process
over the same number of messages, and a bare httpx client posting the bodies the hook received.

P6 I/O-bound, one run: orders for 8 tenants with 3 catch hooks each (24 integrations, so the limit of
2 attempts at once per integration is not what binds), every hook holding its answer 200 ms; timed
from the first send until every hook has answered every POST. The bound is the worker's delivery
slots (OUTBOUND_DELIVERY_CONCURRENCY, 8: at most 40 deliveries/s per worker at 200 ms each), so a
second worker should double it. P6 CPU-bound: the P1 figures with one and two workers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from service.settings import Settings
from tests.bench.harness import (
    Bench,
    Row,
    create_topics,
    median,
    poll_until,
    produce_all,
    raw_feed_and_orders_hook,
    runs_text,
    total_end,
)
from tests.deployments import ROOT, Deployment, Worker, put_integration, worker_knows
from tests.events import order_event, recipe_event, unique
from tests.integrations import integration

HOOK_SECONDS = 0.2  # how long each P6 hook holds its answer
BARE_POST_CONCURRENCY = 8  # the bare client's POSTs at once, and the P1 hook integration's
SLOTS = int(Settings.model_fields["delivery_concurrency"].default)  # a worker's attempts at once
HOOK_TENANTS, HOOKS_PER_TENANT = 8, 3


async def service_run(bench: Bench, deployment: Deployment, workers: list[Worker], events: int) -> dict[str, Any]:
    tenant = await raw_feed_and_orders_hook(bench, deployment, workers, "tp")
    half = events // 2
    recipes = [recipe_event(tenant) for _ in range(half)]
    orders = [order_event(tenant, [r["recipeId"]]) for r in recipes]
    expected = 2 * half  # one raw-feed command per recipe, one order command per order
    deliveries = deployment.topic("deliveries")
    before = await total_end(bench.bootstrap, deliveries)
    posts = bench.destinations.http.hook_requests[tenant]

    async def commands_out() -> bool:
        return await total_end(bench.bootstrap, deliveries) >= before + expected

    async def all_posted() -> bool:
        return len(posts) >= expected

    started = time.monotonic()
    await asyncio.gather(
        produce_all(
            bench.bootstrap, deployment.topic("recipes"), [(r["recipeId"].encode(), orjson.dumps(r)) for r in recipes]
        ),
        produce_all(
            bench.bootstrap, deployment.topic("orders"), [(o["orderId"].encode(), orjson.dumps(o)) for o in orders]
        ),
    )
    commands_at = await poll_until(commands_out, 1800, "every delivery command", every=0.1)
    posted_at = await poll_until(all_posted, 1800, "every hook POST", every=0.05)
    return {
        "commands": events / (commands_at - started),
        "hook": events / (posted_at - started),
        "bodies": [body for _, body in posts[:expected]],
    }


def bare_forward(bench: Bench, events: int) -> float:
    """Events per second of the bare forwarder over `events` fresh messages like the service's input."""
    name = unique("bare.")
    topics = [f"{name}.recipes", f"{name}.orders", f"{name}.out"]
    asyncio.run(create_topics(bench.bootstrap, topics))
    tenant = unique("bare")
    recipes = [recipe_event(tenant) for _ in range(events // 2)]
    orders = [order_event(tenant, [r["recipeId"]]) for r in recipes]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.bare",
            "forward",
            bench.bootstrap,
            topics[2],
            str(2 * len(recipes)),
            *topics[:2],
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    asyncio.run(_produce_pair(bench, topics, recipes, orders))
    out = proc.stdout.readline().strip()
    proc.wait(60)
    # The forwarder times from its first record; the producing side's start is the same moment to within
    # a millisecond on one machine, and the service figure includes it, so add the send time back.
    return 2 * len(recipes) / max(time.monotonic() - started, float(out))


async def _produce_pair(
    bench: Bench, topics: list[str], recipes: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> None:
    await asyncio.gather(
        produce_all(bench.bootstrap, topics[0], [(r["recipeId"].encode(), orjson.dumps(r)) for r in recipes]),
        produce_all(bench.bootstrap, topics[1], [(o["orderId"].encode(), orjson.dumps(o)) for o in orders]),
    )


def bare_post(bench: Bench, bodies: list[bytes]) -> float:
    name = unique("bare-hook-")
    path = Path(tempfile.mkdtemp(prefix="outbound-bench-")) / f"{name}.jsonl"
    path.write_bytes(b"\n".join(bodies) + b"\n")
    url = f"{bench.destinations.http.base}/hook/{name}"
    try:
        out = _run_in_thread(
            [sys.executable, "-m", "tests.bench.bare", "post", url, str(path), str(BARE_POST_CONCURRENCY)],
        )
    finally:
        path.unlink(missing_ok=True)
        bench.destinations.http.hook_requests.pop(name, None)
    return len(bodies) / float(out)


def _run_in_thread(cmd: list[str]) -> str:
    """A baseline that talks to the servers of this process: their loop must keep running meanwhile."""
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=1800).stdout.strip()


async def throughput(bench: Bench, workers: int = 1) -> list[dict[str, float]]:
    deployment = bench.deployment()
    # The hook may take as many POSTs at once as the bare client makes (8): the figure compares the
    # two at the same concurrency.
    running = [
        await bench.worker(deployment, f"w{i}", OUTBOUND_INTEGRATION_CONCURRENCY=str(BARE_POST_CONCURRENCY))
        for i in range(workers)
    ]
    results = []
    loop = asyncio.get_running_loop()
    try:
        for run in range(bench.sizes.runs):
            spies = bench.profile(running, f"throughput-{workers}w-run{run + 1}") if run == 0 else []
            try:
                service = await service_run(bench, deployment, running, bench.sizes.throughput_events)
            finally:
                bench.end_profile(spies)
            forward = await loop.run_in_executor(None, bare_forward, bench, bench.sizes.throughput_events)
            posted = await loop.run_in_executor(None, bare_post, bench, service["bodies"])
            print(
                f"  run {run + 1} ({workers} worker{'s' if workers > 1 else ''}): commands {service['commands']:.0f}/s "
                f"(bare {forward:.0f}/s), hook {service['hook']:.0f}/s (bare {posted:.0f}/s)",
                flush=True,
            )
            results.append(
                {"commands": service["commands"], "hook": service["hook"], "forward": forward, "post": posted}
            )
    finally:
        bench.stop_workers()
    return results


def _rows(results: list[dict[str, float]], events: int, label: str = "") -> list[Row]:
    c, h = [r["commands"] for r in results], [r["hook"] for r in results]
    f, p = [r["forward"] for r in results], [r["post"] for r in results]
    half = events // 2
    return [
        Row(
            f"P1 {half:,} recipes + {half:,} orders → last delivery command{label}",
            f"{median(c):,.0f} events/s",
            f"aiokafka consume→transform→produce: {median(f):,.0f}/s",
            f"{median(c) / median(f):.3f}",
            f"{runs_text(c)} / {runs_text(f)}",
        ),
        Row(
            f"P1 same, until the catch hook has every POST{label}",
            f"{median(h):,.0f} events/s",
            f"httpx AsyncClient, same bodies, concurrency 8: {median(p):,.0f}/s",
            f"{median(h) / median(p):.2f}",
            f"{runs_text(h)} / {runs_text(p)}",
        ),
    ]


async def bench_throughput(bench: Bench) -> None:
    """P1: both throughput figures with one worker."""
    for row in _rows(await throughput(bench, 1), bench.sizes.throughput_events):
        bench.report(row)


class SlowHooks:
    """The P6 tenants, each with its recipe and its catch hooks, every hook answering after HOOK_SECONDS."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        http = bench.destinations.http
        self.tenants = [unique("io") for _ in range(HOOK_TENANTS)]
        self.recipes = {t: recipe_event(t) for t in self.tenants}
        self.hooks = {t: [f"{t}-h{j}" for j in range(HOOKS_PER_TENANT)] for t in self.tenants}
        self.names = [n for t in self.tenants for n in self.hooks[t]]
        self.docs = [
            integration(
                t,
                "zapier",
                {"hook-url": f"{http.base}/hook/{name}"},
                ["order.created"],
                description="P6 slow hook",
                successNotificationList="",
                failureNotificationList="",
            )
            for t in self.tenants
            for name in self.hooks[t]
        ]
        self.first_post: float | None = None
        for name in self.names:
            http.hook_responders[name] = self._answer

    def _answer(self, headers: dict[str, str], seen: int) -> tuple[int, dict[str, str], float]:
        if self.first_post is None:
            self.first_post = time.monotonic()
        return 200, {}, HOOK_SECONDS

    def answered(self) -> int:
        return sum(len(self.bench.destinations.http.hook_answered[n]) for n in self.names)

    def in_flight(self) -> int:
        return sum(self.bench.destinations.http.hook_in_flight[n] for n in self.names)

    async def configure(self, deployment: Deployment, workers: list[Worker]) -> None:
        """Publish the 24 integrations (a few CLI processes at once), then one warm order per tenant."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(4) as pool:
            done = await asyncio.gather(
                *(loop.run_in_executor(pool, put_integration, deployment, d) for d in self.docs)
            )
        refused = [r.stderr for r in done if r.returncode != 0]
        assert not refused, refused
        for w in workers:
            for doc in self.docs:
                await worker_knows(w, doc["id"])
        await deployment.produce_json("recipes", list(self.recipes.values()), "recipeId")
        before = self.answered()
        await self.send(deployment, len(self.tenants))

        async def warm() -> bool:
            return self.answered() >= before + len(self.names)

        await poll_until(warm, 300, "the warm-up POST of every P6 hook", every=0.1)

    async def send(self, deployment: Deployment, orders: int) -> None:
        tenants = [self.tenants[i % len(self.tenants)] for i in range(orders)]
        docs = [order_event(t, [self.recipes[t]["recipeId"]]) for t in tenants]
        await produce_all(
            self.bench.bootstrap, deployment.topic("orders"), [(o["orderId"].encode(), orjson.dumps(o)) for o in docs]
        )

    def forget(self) -> None:
        http = self.bench.destinations.http
        for name in self.names:
            for table in (
                http.hook_responders,
                http.hook_requests,
                http.hook_answered,
                http.hook_statuses,
                http.hook_in_flight,
                http.hook_most_in_flight,
            ):
                table.pop(name, None)


async def slow_hooks_run(bench: Bench, deployment: Deployment, hooks: SlowHooks) -> dict[str, float]:
    orders = -(-bench.sizes.scaleout_deliveries // HOOKS_PER_TENANT)
    expected = orders * HOOKS_PER_TENANT
    before = hooks.answered()
    hooks.first_post = None
    samples: list[int] = []  # POSTs in flight, every 20 ms from the first POST on

    async def all_answered() -> bool:
        if hooks.first_post is not None:
            samples.append(hooks.in_flight())
        return hooks.answered() >= before + expected

    started = time.monotonic()
    await hooks.send(deployment, orders)
    done = await poll_until(all_answered, 1800, "every P6 hook answer", every=0.02)
    first = hooks.first_post or started
    return {
        "rate": expected / (done - started),
        "steady": expected / (done - first),
        "most": float(max(samples, default=0)),
        "mean": sum(samples) / max(1, len(samples)),
    }


async def slow_hooks(bench: Bench, workers: int) -> list[dict[str, float]]:
    deployment = bench.deployment()
    running = [await bench.worker(deployment, f"io{i}") for i in range(workers)]
    hooks = SlowHooks(bench)
    results = []
    try:
        await hooks.configure(deployment, running)
        for run in range(bench.sizes.runs):
            result = await slow_hooks_run(bench, deployment, hooks)
            print(
                f"  run {run + 1} ({workers} worker{'s' if workers > 1 else ''}, hooks answering in "
                f"{HOOK_SECONDS * 1000:.0f} ms): {result['rate']:.1f} deliveries/s from the first send, "
                f"{result['steady']:.1f}/s from the first POST, POSTs at once: {result['mean']:.1f} on average, "
                f"{result['most']:.0f} at most",
                flush=True,
            )
            results.append(result)
    finally:
        bench.stop_workers()
        hooks.forget()
    return results


async def bench_scaleout(bench: Bench) -> None:
    """P6: I/O-bound (24 hooks answering in 200 ms) with one and two workers, then the P1 figures
    (CPU-bound) with one and two workers on the same 6 partitions."""
    io_one = await slow_hooks(bench, 1)
    io_two = await slow_hooks(bench, 2)
    a, b = [r["rate"] for r in io_one], [r["rate"] for r in io_two]
    mean = median([r["mean"] for r in io_one]), median([r["mean"] for r in io_two])
    deliveries = -(-bench.sizes.scaleout_deliveries // HOOKS_PER_TENANT) * HOOKS_PER_TENANT
    bench.report(
        Row(
            f"P6 scale-out, I/O-bound: {deliveries:,} hook deliveries, {HOOK_TENANTS * HOOKS_PER_TENANT} hooks "
            f"answering in {HOOK_SECONDS * 1000:.0f} ms, 2 workers vs 1",
            f"{median(b):,.1f} deliveries/s",
            f"1 worker: {median(a):,.1f} deliveries/s",
            f"{median(b) / median(a):.2f}x",
            f"{runs_text(b, '{:.1f}')} / {runs_text(a, '{:.1f}')}",
            note=f"first order sent → last hook answer; POSTs in flight on average {mean[1]:.1f} with 2 workers, "
            f"{mean[0]:.1f} with 1 ({SLOTS} delivery slots per worker: at most {SLOTS / HOOK_SECONDS:.0f} "
            "deliveries/s each)",
        )
    )
    one = await throughput(bench, 1)
    two = await throughput(bench, 2)
    for key, what in (("commands", "last delivery command"), ("hook", "every hook POST")):
        a, b = [r[key] for r in one], [r[key] for r in two]
        bench.report(
            Row(
                f"P6 scale-out, CPU-bound, {what}: 2 workers vs 1 (6 partitions)",
                f"{median(b):,.0f} events/s",
                f"1 worker: {median(a):,.0f} events/s",
                f"{median(b) / median(a):.2f}x",
                f"{runs_text(b)} / {runs_text(a)}",
                note="both workers share the machine's 2 cores with the broker, the hook server and the bench",
            )
        )

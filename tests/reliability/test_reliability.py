"""The promise under stress: every order's files reach every configured destination at least once;
duplicates only as overwrites of the same names. Real worker processes, the real broker, loopback.

Sizes: `OUTBOUND_RELIABILITY_ORDERS` (R1's and R5's orders, default 800; R4 churns a tenth of them
and R2 re-drives a hundredth, at least 20; the README's longer run uses 10,000),
`OUTBOUND_RELIABILITY_EVENTS` (R3, default 1,000), `OUTBOUND_RELIABILITY_CHURN` (R5's third workers
started and stopped, default 3), `OUTBOUND_RELIABILITY_KILLS` (R1's SIGKILLs, default 5) and
`OUTBOUND_RELIABILITY_SEED` (where R1's kills fall; printed with its figures and in a failure).

After every scenario the broker is asked too (tests/broker_view.py): each input record below the group's
committed offsets must have been handled or refused.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.broker_view import assert_nothing_skipped_below_commits, below_commits, group_state
from tests.deployments import Worker, answers_ready, configure, load_local_kafka, new_deployment
from tests.events import malformed, order_event, recipe_event, unique
from tests.files import good_file
from tests.integrations import hook_integration, integration, local_integration, s3_settings, sftp_settings
from tests.reliability.conftest import report
from tests.servers import start_sftp
from tests.stores import make_bucket, s3_client
from tests.waiting import wait_for, wait_for_progress

POLL = 1.0  # seconds between progress checks: counting thousands of files must not starve the worker

ORDERS = int(os.environ.get("OUTBOUND_RELIABILITY_ORDERS", "800"))
EVENTS = int(os.environ.get("OUTBOUND_RELIABILITY_EVENTS", "1000"))
CHURN = int(os.environ.get("OUTBOUND_RELIABILITY_CHURN", "3"))
KILLS = int(os.environ.get("OUTBOUND_RELIABILITY_KILLS", "5"))
# R1 kills at shares of the delivered files drawn from this seed; a failure names it, so the run can be
# repeated exactly (the same seed, the same moments).
SEED = int(os.environ.get("OUTBOUND_RELIABILITY_SEED", str(random.SystemRandom().randrange(10**6))))
TENANTS = 10
# How long one step may go without reaching its mark, and a whole scenario: enough for the longer
# documented runs too (about 30 orders a second per step on this machine, with a wide margin).
STEP = max(300.0, (ORDERS + EVENTS) * 0.1)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(max(900, int(3 * STEP)))]


def one_file_recipe(destinations, tenant):
    """A recipe with one small production file on the test asset host (a delivery is that file and
    its manifest)."""
    recipe = recipe_event(tenant)
    recipe["files"] = recipe["files"][:1]
    recipe["files"][0]["url"] = destinations.http.add_asset(f"{unique()}.json", good_file("json", os.urandom(16)))
    return recipe


def local_files(root: Path) -> set[str]:
    """Delivered names under the local-delivery root (one folder per tenant); temporary files, hidden
    until renamed, are not counted."""
    names: set[str] = set()
    for folder in root.iterdir() if root.is_dir() else []:
        names.update(n for n in os.listdir(folder) if not n.startswith("."))
    return names


async def s3_keys(destinations, bucket) -> set[str]:
    keys: set[str] = set()
    async with s3_client(destinations) as s3:
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(item["Key"].rsplit("/", 1)[-1] for item in page.get("Contents", []))
    return keys


def restarts(log: Path) -> int:
    text = log.read_text()
    return text.count("Crashed reason") + text.count("Restarting dead")


async def test_r1_hard_kills_lose_nothing(kafka, destinations):
    started = time.monotonic()
    deployment = new_deployment(
        kafka, **destinations.worker_env(), OUTBOUND_DELIVERY_CONCURRENCY="16", OUTBOUND_INTEGRATION_CONCURRENCY="4"
    )
    bucket = unique("r1-")
    await make_bucket(destinations, bucket)
    tenants = [unique("r1t") for _ in range(TENANTS)]
    # A static member, as the chart runs every worker: a killed worker is back at once under its
    # instance id (tests/integration/test_static_membership.py), so five kills cost seconds, not the
    # session timeout each. Killed without an id: tests/integration/test_delivery_guarantees.py.
    static = {"OUTBOUND_INSTANCE_ID": "r1"}
    worker = await Worker(deployment, "r1", **static).start().ready()
    for tenant in tenants:
        await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
        await configure(
            deployment, [worker], integration(tenant, "s3", s3_settings(destinations, bucket, prefix=tenant))
        )
    recipes = {t: [one_file_recipe(destinations, t) for _ in range(20)] for t in tenants}
    orders = [order_event(t, [recipes[t][i % 20]["recipeId"]]) for i in range(ORDERS) for t in [tenants[i % TENANTS]]]
    expected = len(orders) * 2  # each order's file and its manifest, at each destination
    await deployment.produce_json("recipes", [r for rs in recipes.values() for r in rs], "recipeId")
    await deployment.produce_json("orders", orders, "orderId")
    root = deployment.workdir / "deliveries"
    moments = random.Random(SEED)
    shares = sorted(moments.uniform(0.05, 0.9) for _ in range(KILLS))
    for share in shares:
        await wait_for(
            lambda share=share: len(local_files(root)) >= share * expected,
            STEP,
            f"{share:.0%} delivered (OUTBOUND_RELIABILITY_SEED={SEED})",
            POLL,
        )
        worker.stop(signal.SIGKILL)
        worker = await Worker(deployment, "r1", port=worker.port, **static).start().ready()
    try:
        try:
            await wait_for(lambda: len(local_files(root)) >= expected, STEP, "every file in the folders", POLL)
        except AssertionError as timeout:
            raise AssertionError(
                f"{timeout}; OUTBOUND_RELIABILITY_SEED={SEED}; {await where_orders_stopped(deployment, orders, root)}"
            ) from None

        async def all_in_s3() -> bool:
            return len(await s3_keys(destinations, bucket)) >= expected

        await wait_for(all_in_s3, STEP, "every object in the bucket", POLL)
        assert len(local_files(root)) == expected and len(await s3_keys(destinations, bucket)) == expected
        delivered = Counter(
            d["deliveryId"]
            for d in await deployment.read_json("delivery-results", lambda d: d["outcome"] == "delivered")
        )
        assert len(delivered) == len(orders) * 2  # one delivery per (order, destination)
        duplicates = sum(n - 1 for n in delivered.values())
        checked = await assert_nothing_skipped_below_commits(deployment)
        report(
            f"R1 hard kills ({KILLS} SIGKILLs at {', '.join(f'{x:.0%}' for x in shares)}, seed {SEED})",
            orders=len(orders),
            deliveries=len(delivered),
            delivered=len(delivered),
            duplicates=duplicates,
            lost=0,
            below_commits_checked=checked,
            seconds=round(time.monotonic() - started),
        )
    finally:
        worker.stop()


def orders_in_folders(root: Path) -> set[str]:
    """The orderIds named by the delivered files (`<orderNumber>_ID_<orderId>_R_<recipeId>_<name>`)."""
    return {name.split("_ID_", 1)[1].split("_R_", 1)[0] for name in local_files(root) if "_ID_" in name}


async def where_orders_stopped(deployment, orders, root: Path) -> str:
    """For a failed run: how far the orders missing from the folders got through the service's topics."""
    missing = {o["orderId"] for o in orders} - orders_in_folders(root)
    seen = {}
    for topic, field in (
        ("order-events", "orderId"),
        ("order-links", "orderId"),
        ("deliveries", "orderId"),
        ("delivery-results", "orderId"),
        ("invalid-events", None),
    ):
        docs = await deployment.read_json(topic)
        seen[topic] = len(missing & {str(d.get(field)) for d in docs}) if field else len(docs)
    stages = ", ".join(f"{t}: {n}" for t, n in seen.items())
    positions = sorted(
        (r.partition, r.offset)
        for r in await deployment.read("orders")
        if r.value is not None and orjson.loads(r.value).get("orderId") in missing
    )
    return (
        f"{len(missing)} orders missing (e.g. {sorted(missing)[:3]}); of them on {stages}; "
        f"their orders records (partition, offset): {positions[:40]}; logs in {deployment.workdir}"
    )


def poisoned(kind, docs, key_field):
    """Eleven classes of bad input, cycled: ten malformed values or keys, and a tombstone."""
    return [malformed(kind, d, i) if i % 11 < 10 else (str(d[key_field]).encode(), None) for i, d in enumerate(docs)]


async def test_r3_poison_is_parked_and_everything_valid_is_delivered(kafka, destinations):
    started = time.monotonic()
    deployment = new_deployment(kafka, **destinations.worker_env(), OUTBOUND_MAX_EVENT_BYTES="200000")
    tenant = unique("r3")
    worker = await Worker(deployment, "r3").start().ready()
    try:
        await configure(deployment, [worker], local_integration(tenant, ["recipe.created", "order.created"]))
        per_topic, bad_per_topic = EVENTS // 2, EVENTS // 20  # a tenth of all events malformed
        recipes = [one_file_recipe(destinations, tenant) for _ in range(per_topic - bad_per_topic)]
        orders = [order_event(tenant, [recipes[i % len(recipes)]["recipeId"]]) for i in range(per_topic)]
        good_orders = orders[bad_per_topic:]
        bad = poisoned("recipe", [recipe_event(tenant) for _ in range(bad_per_topic)], "recipeId")
        bad_orders = poisoned("order", orders[:bad_per_topic], "orderId")
        await deployment.produce("recipes", [(r["recipeId"].encode(), orjson.dumps(r)) for r in recipes] + bad)
        await deployment.produce("orders", [(o["orderId"].encode(), orjson.dumps(o)) for o in good_orders] + bad_orders)
        expected = (len(recipes) + len(good_orders)) * 2  # each delivery: its file and its manifest
        root = deployment.workdir / "deliveries"
        await wait_for(lambda: len(local_files(root)) >= expected, STEP, "every valid event delivered", POLL)
        from_input = lambda d: d["sourceTopic"].endswith((".recipes", ".orders"))  # noqa: E731
        invalid = await deployment.wait_json("invalid-events", from_input, len(bad) + len(bad_orders), 120)
        assert all(d["reasons"] for d in invalid)
        assert len([d for d in invalid if d["reasons"] == ["message has no value"]]) == 2 * (bad_per_topic // 11)
        assert len(local_files(root)) == expected
        assert restarts(worker.log) == 0
        checked = await assert_nothing_skipped_below_commits(deployment)  # the malformed count as refused
        report(
            "R3 poison",
            events=len(recipes) + len(good_orders) + len(bad) + len(bad_orders),
            malformed=len(invalid),
            delivered=expected // 2,
            lost=0,
            agent_restarts=restarts(worker.log),
            below_commits_checked=checked,
            seconds=round(time.monotonic() - started),
        )
    finally:
        worker.stop()


async def readiness_seen(worker: Worker, deadline: float = 120.0) -> list[int]:
    """The readiness answers of a starting worker, until the first 200."""
    seen: list[int] = []

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{worker.port}/health/ready", timeout=2)
        except httpx.HTTPError:
            return False
        seen.append(answer.status_code)
        return answer.status_code == 200

    await wait_for(ready, deadline, f"worker {worker.name} to be ready")
    return seen


async def test_r4_broker_restart_and_a_worker_joining_then_leaving_lose_nothing(destinations):
    started = time.monotonic()
    local_kafka = load_local_kafka()
    broker = local_kafka.Broker(
        Path(tempfile.mkdtemp(prefix="outbound-r4-")), local_kafka.free_port(), local_kafka.free_port()
    )
    await asyncio.to_thread(local_kafka.start, broker)
    first = second = None
    try:
        deployment = new_deployment(broker.bootstrap, **destinations.worker_env())
        tenant = unique("r4")
        first = await Worker(deployment, "one").start().ready()
        await configure(deployment, [first], local_integration(tenant, ["order.created"]))
        recipes = [one_file_recipe(destinations, tenant) for _ in range(20)]
        orders = [order_event(tenant, [recipes[i % 20]["recipeId"]]) for i in range(ORDERS // 10)]
        await deployment.produce_json("recipes", recipes, "recipeId")
        await deployment.produce_json("orders", orders, "orderId")
        expected = len(orders) * 2
        root = deployment.workdir / "deliveries"
        await wait_for(lambda: len(local_files(root)) >= 0.2 * expected, STEP, "a fifth delivered", POLL)
        # The broker goes away mid-stream and comes back on the same ports.
        await asyncio.to_thread(local_kafka.stop, broker)
        await asyncio.to_thread(local_kafka.start, broker)
        await wait_for(lambda: len(local_files(root)) >= 0.4 * expected, STEP, "two fifths delivered", POLL)
        second = Worker(deployment, "two").start()
        answers = await readiness_seen(second)
        assert answers[0] == 503 and answers[-1] == 200, answers  # not ready while it recovers and joins
        await wait_for(lambda: len(local_files(root)) >= 0.7 * expected, STEP, "seven tenths delivered", POLL)
        second.stop()  # back to one worker
        await wait_for(lambda: len(local_files(root)) >= expected, STEP, "everything delivered", POLL)
        # The tables came through intact: an order for an old recipe still finds it.
        late = order_event(tenant, [recipes[0]["recipeId"]])
        await deployment.produce_json("orders", [late], "orderId")
        await wait_for(lambda: len(local_files(root)) >= expected + 2, 120, "an order for an old recipe")
        assert len(local_files(root)) == expected + 2
        assert (await readiness_seen(first))[-1] == 200
        checked = await assert_nothing_skipped_below_commits(deployment)
        report(
            "R4 broker restart, workers 1 -> 2 -> 1",
            orders=len(orders) + 1,
            delivered=len(orders) + 1,
            lost=0,
            below_commits_checked=checked,
            seconds=round(time.monotonic() - started),
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        await asyncio.to_thread(local_kafka.stop, broker)


async def test_r2_an_sftp_outage_fails_and_tells_without_delaying_others_then_a_redrive_delivers(kafka, destinations):
    started = time.monotonic()
    sftp = await start_sftp()
    deployment = new_deployment(kafka, **destinations.worker_env())
    tenant = unique("r2")
    worker = await Worker(deployment, "r2").start().ready()
    try:
        down = integration(
            tenant, "sftp", sftp_settings(sftp, tenant), failureNotificationList=f"alerts-{tenant}@ops.example"
        )
        await configure(deployment, [worker], down)
        await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
        recipes = [one_file_recipe(destinations, tenant) for _ in range(10)]
        await deployment.produce_json("recipes", recipes, "recipeId")
        orders = [order_event(tenant, [recipes[i % 10]["recipeId"]]) for i in range(max(ORDERS // 100, 20))]
        sftp.server.close()  # the outage: 30 s with nothing listening
        await sftp.server.wait_closed()
        outage_started = time.monotonic()
        sent_at = datetime.now(UTC)
        await deployment.produce_json("orders", orders, "orderId")
        local = await deployment.wait_json(
            "delivery-results", lambda d: d["integrationType"] == "local" and d["tenant"] == tenant, len(orders), 120
        )
        lag = sorted((datetime.fromisoformat(r["finishedAt"]) - sent_at).total_seconds() for r in local)
        assert lag[-1] < 30, f"the healthy integration waited {lag[-1]:.1f}s behind the outage"
        failed = await deployment.wait_json(
            "deliveries-failed", lambda d: d["command"]["integrationId"] == down["id"], len(orders), 120
        )
        assert all(len(f["command"]["errors"]) == 3 for f in failed)
        inbox = destinations.smtp.inbox
        await wait_for(lambda: len(inbox.to(f"alerts-{tenant}@ops.example")) >= len(orders), 120, "failure notices", 1)
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))  # the rest of the outage itself
        sftp = await start_sftp(sftp.port, sftp.key, sftp.root)
        deployment.cli("redrive", "--integration", down["id"])
        root = sftp.root / tenant

        def on_the_server() -> int:
            return len([n for n in os.listdir(root) if not n.startswith(".")]) if root.is_dir() else 0

        await wait_for(lambda: on_the_server() >= 2 * len(orders), 180, "every file on the SFTP server", POLL)
        assert on_the_server() == 2 * len(orders)
        checked = await assert_nothing_skipped_below_commits(deployment)
        report(
            "R2 SFTP outage 30 s, then re-drive",
            orders=len(orders),
            failed_then_redriven=len(failed),
            notices=len(inbox.to(f"alerts-{tenant}@ops.example")),
            other_integration_p50_s=round(lag[len(lag) // 2], 2),
            other_integration_max_s=round(lag[-1], 2),
            lost=0,
            below_commits_checked=checked,
            seconds=round(time.monotonic() - started),
        )
    finally:
        worker.stop()
        sftp.server.close()


def hook_orders(destinations, tenants) -> set[str]:
    """The orderIds the tenants' catch hooks have received a POST for."""
    return {orjson.loads(body)["orderId"] for t in tenants for _, body in destinations.http.hook_requests[t]}


async def produce_during(deployment, pending: list[dict], budget: int, over) -> None:
    """Orders from `pending`, a slice at a time, until the rebalance is `over()` or `budget` is spent: what
    a kept partition receives while its worker is revoked, assigned, recovering and seeking."""
    while budget > 0 and pending:
        batch = [pending.pop(0) for _ in range(min(SLICE, budget, len(pending)))]
        budget -= len(batch)
        await deployment.produce_json("orders", batch, "orderId")
        if await over():
            return


async def rebalancing(deployment, members: int) -> bool:
    """The group has left the stable state it had with `members` workers (a worker joins or leaves)."""
    return await group_state(deployment) != ("Stable", members)


async def settled(deployment, workers: list[Worker]) -> bool:
    """The group is stable with exactly these workers, and each of them has recovered and is ready."""
    return await group_state(deployment) == ("Stable", len(workers)) and await answers_ready(workers)


LINGER = 4.0  # seconds a third worker stays once it is ready: its lifetime is the point, not a wait
SLICE = 20  # orders per message batch while a rebalance is on
STALL = 60.0  # R5 fails once nothing new has arrived for this long: what is lost does not come later


async def test_r5_workers_joining_and_leaving_under_load_lose_nothing(kafka, destinations):
    started = time.monotonic()
    deployment = new_deployment(
        kafka, **destinations.worker_env(), OUTBOUND_DELIVERY_CONCURRENCY="16", OUTBOUND_INTEGRATION_CONCURRENCY="4"
    )
    tenants = [unique("r5t") for _ in range(TENANTS)]
    workers = [Worker(deployment, name).start() for name in ("a", "b")]
    third = None
    try:
        await asyncio.gather(*(w.ready() for w in workers))
        for tenant in tenants:
            await configure(deployment, workers, local_integration(tenant, ["order.created"]))
            await configure(deployment, workers, hook_integration(destinations, tenant, successNotificationList=""))
        recipes = {t: [one_file_recipe(destinations, t) for _ in range(20)] for t in tenants}
        await deployment.produce_json("recipes", [r for rs in recipes.values() for r in rs], "recipeId")
        orders = [
            order_event(t, [recipes[t][i % 20]["recipeId"]]) for i in range(ORDERS) for t in [tenants[i % TENANTS]]
        ]
        # The orders arrive while the group rebalances: slices from the moment the group starts to take a
        # worker in (or let one go) until it is stable again and every worker has recovered. Between
        # rebalances nothing new arrives, so the input partitions catch up and their fetches wait when
        # the next rebalance begins (orders flowing steadily through the churn kept every fetch busy
        # and never showed the loss here); the earlier orders work their way downstream meanwhile.
        pending = list(orders)
        churn_started = time.monotonic()
        ready_after = []
        for windows_left in range(2 * CHURN, 0, -2):
            born = time.monotonic()
            third = Worker(deployment, "c").start()  # the same data directory each time, like a pod's volume
            three = [*workers, third]
            await wait_for(lambda: rebalancing(deployment, 2), 120, "the group to start taking the third worker in")
            await produce_during(
                deployment, pending, -(-len(pending) // windows_left), lambda three=three: settled(deployment, three)
            )
            await third.ready()
            ready_after.append(round(time.monotonic() - born))
            await asyncio.sleep(LINGER)
            # SIGTERM: it leaves the group. The stop waits for the process in a thread, so the hooks,
            # served by this loop, keep answering meanwhile.
            stopping = asyncio.create_task(asyncio.to_thread(third.stop))
            await wait_for(lambda: rebalancing(deployment, 3), 120, "the group to start letting the third worker go")
            await produce_during(
                deployment, pending, -(-len(pending) // (windows_left - 1)), lambda: settled(deployment, workers)
            )
            await stopping
            await wait_for(lambda: settled(deployment, workers), 120, "the group to settle on two workers", 0.2)
        during_rebalances = len(orders) - len(pending)
        await deployment.produce_json("orders", pending, "orderId")  # whatever the windows had no time for
        churned = time.monotonic() - churn_started
        root = deployment.workdir / "deliveries"
        expected = len(orders) * 2  # each order's file and its manifest, in the local folder
        wanted = {o["orderId"] for o in orders}
        try:
            await wait_for_progress(
                lambda: len(local_files(root)) + len(hook_orders(destinations, tenants)),
                expected + len(orders),
                STALL,
                "every file in the folders and every order's POST at the hooks",
                POLL,
                STEP,
            )
        except AssertionError as stalled:
            lost = wanted - (orders_in_folders(root) & hook_orders(destinations, tenants))
            found = await below_commits(deployment)
            raise AssertionError(
                f"{stalled}; {len(lost)} of {len(orders)} orders lost "
                f"({len(wanted - orders_in_folders(root))} not in the folders, "
                f"{len(wanted - hook_orders(destinations, tenants))} never posted); "
                f"{await where_orders_stopped(deployment, orders, root)}; "
                f"below the group's commits: {found.problems() or 'nothing skipped'}; {found.summary()}"
            ) from None
        assert len(local_files(root)) == expected
        assert hook_orders(destinations, tenants) == wanted
        refused = await deployment.read_json("invalid-events")
        assert refused == [], [d["reasons"] for d in refused][:10]
        delivered = Counter(
            d["deliveryId"]
            for d in await deployment.read_json("delivery-results", lambda d: d["outcome"] == "delivered")
        )
        assert len(delivered) == len(orders) * 2  # one delivery per (order, destination)
        posts = sum(len(destinations.http.hook_requests[t]) for t in tenants)
        checked = await assert_nothing_skipped_below_commits(deployment)
        report(
            f"R5 workers 2 -> 3 -> 2, {CHURN} times (SIGTERM), under load",
            orders=len(orders),
            churns=CHURN,
            produced_during_rebalances=during_rebalances,
            delivered=len(delivered),
            duplicates=sum(n - 1 for n in delivered.values()),
            hook_duplicates=posts - len(orders),
            lost=0,
            below_commits_checked=checked,
            third_ready_after_s=ready_after,
            churn_seconds=round(churned),
            seconds=round(time.monotonic() - started),
        )
    finally:
        for worker in (third, *workers):
            if worker is not None:
                worker.stop()

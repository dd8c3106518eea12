"""Static group membership (OUTBOUND_INSTANCE_ID), against the real broker: a worker that comes back
under its instance id takes its own partitions back at once, and the others are not rebalanced.

The group's session timeout stays at its default (60 s) here: a restart that had to wait it out, as
a new member must, would miss the deadlines below by far."""

from __future__ import annotations

import signal

import pytest

from tests.broker_view import group_state
from tests.deployments import Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_with_assets, unique
from tests.integrations import local_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ASSIGNED = "Executing _on_partitions_assigned"
BACK_WITHIN = 30.0  # seconds: half the session timeout
PREVIOUS_URL = "the assignment it had at its previous URL"
ROUNDS = 3


def assignments(worker: Worker) -> int:
    return worker.log.read_text().count(ASSIGNED)


async def test_a_killed_static_member_is_back_at_once_the_other_is_never_revoked_and_nothing_is_lost(
    kafka, destinations
):
    deployment = new_deployment(kafka, **destinations.worker_env())
    tenant = unique("sm")
    a = Worker(deployment, "a", OUTBOUND_INSTANCE_ID="worker-a").start()
    b = Worker(deployment, "b", OUTBOUND_INSTANCE_ID="worker-b").start()
    try:
        await a.ready()
        await b.ready()
        await configure(deployment, [a, b], local_integration(tenant, ["order.created"]))
        # Orders for recipes never seen: each waits in the join, so every one of them crosses the
        # kill, and its link to the join proves it was handled.
        orders = [order_event(tenant, [unique("r")]) for _ in range(60)]
        await deployment.produce_json("orders", orders[:30], "orderId")
        await wait_for(lambda: assignments(a) >= 1 and assignments(b) >= 1, 60, "both workers assigned")
        settled = assignments(a)

        b.stop(signal.SIGKILL)
        await deployment.produce_json("orders", orders[30:], "orderId")
        again = Worker(deployment, "b", port=b.port, OUTBOUND_INSTANCE_ID="worker-b").start()
        try:
            await again.ready(BACK_WITHIN)
            ids = {o["orderId"] for o in orders}

            async def every_order_accepted() -> bool:
                seen = {d["orderId"] for d in await deployment.read_json("order-links")}
                return ids <= seen

            await wait_for(every_order_accepted, 90, "every order's link on order-links", every=1)
            assert assignments(a) == settled, "the other worker was rebalanced"
        finally:
            again.stop()
    finally:
        a.stop()
        b.stop()


async def test_a_static_member_back_at_another_address_serves_its_own_partitions(kafka, destinations):
    """The group hands it the assignment made for its old URL; its own look-ups are answered here, not
    forwarded to the address it no longer has."""
    deployment = new_deployment(kafka, **destinations.worker_env())
    tenant = unique("su")
    moved = await Worker(deployment, "one", OUTBOUND_INSTANCE_ID="worker-0").start().ready()
    try:
        # The broker hands a rejoining static member its old assignment when the group is stable;
        # when the kill lands while the group is still settling it runs a rebalance instead (seen on
        # a loaded machine), and the old URL never comes back: the case is tried again.
        for _ in range(ROUNDS):
            first, seen = moved, moved.log.read_text().count(PREVIOUS_URL)
            first.stop(signal.SIGKILL)
            moved = Worker(deployment, "one", OUTBOUND_INSTANCE_ID="worker-0").start()
            await moved.ready(BACK_WITHIN)
            assert moved.port != first.port
            if moved.log.read_text().count(PREVIOUS_URL) > seen:
                break
        else:
            pytest.fail(f"the group never handed back the old assignment in {ROUNDS} restarts")
        await configure(deployment, [moved], local_integration(tenant, ["order.created"]))
        recipe, _ = recipe_with_assets(destinations, tenant)
        order = order_event(tenant, [recipe["recipeId"]])
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order], "orderId")
        [result] = await deployment.wait_json("delivery-results", of_tenant(tenant), 1, timeout=90)
        assert result["outcome"] == "delivered", result
        answers: list[tuple[int, str]] = []

        async def status_here() -> bool:
            async with moved.api() as api:
                r = await api.get(f"/v1/status/orders/{order['orderId']}")
            answers.append((r.status_code, r.text[:300]))
            return r.status_code == 200

        try:
            await wait_for(status_here, 30, "the order's status from the worker that owns it")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers: {answers[-3:]}") from None
        # Stopped, a static member stays in the group (no LeaveGroup): its partitions wait for it.
        moved.stop()
        assert (await group_state(deployment))[1] == 1
    finally:
        moved.stop()

"""A fetch issued before a rebalance never makes the group commit past records no agent handled
(service/faust_fixes.py, `NoSkipConsumer`), against the real broker.

The kept worker runs with a test fault (tests/faults/sitecustomize.py): a fetch that was waiting when
the group rebalanced and returns records afterwards is held until the recovery has sought the
partitions, then let through while they are still paused: the window in which Faust dropped such
records without seeking back, and the next commit passed them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.broker_view import assert_nothing_skipped_below_commits
from tests.deployments import Worker, answers_ready, new_deployment
from tests.events import order_event, unique
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
# Joins and leaves until a fetch from before a rebalance returns during the seek (timing decides when;
# each round is a few seconds).
ROUNDS = 10

FAULTS = os.pathsep.join([str(Path(__file__).resolve().parent.parent / "faults"), os.environ.get("PYTHONPATH", "")])
HELD = "test fault: stale fetch released after the seek"


async def test_records_a_stale_fetch_returns_during_the_seek_are_all_handled(kafka):
    deployment = new_deployment(kafka)
    tenant = unique("rb")
    kept = await Worker(deployment, "kept", PYTHONPATH=FAULTS, TEST_FAULT_HOLD_STALE_FETCH="1").start().ready()
    produced: list[dict] = []

    async def produce_while(condition) -> None:
        """Orders in small slices until `condition` holds (records arriving during the rebalance)."""

        async def slice_then_check() -> bool:
            batch = [order_event(tenant, [unique("r")]) for _ in range(12)]
            await deployment.produce_json("orders", batch, "orderId")
            produced.extend(batch)
            return bool(await condition())

        await wait_for(slice_then_check, 120, "the rebalance to end", every=0.3)

    try:
        for round_ in range(ROUNDS):
            joiner = Worker(deployment, f"joiner{round_}").start()
            await produce_while(lambda joiner=joiner: answers_ready([joiner]))
            joiner.stop()  # leaving: the kept worker takes every partition back
            await produce_while(lambda: answers_ready([kept]))
            if HELD in kept.log.read_text():
                break
        assert HELD in kept.log.read_text(), "no fetch from before a rebalance returned during the seek"

        # Every order has a line, so a handled order has its link to the join.
        async def every_order_handled() -> bool:
            ids = {d["orderId"] for d in await deployment.read_json("order-links")}
            return all(o["orderId"] in ids for o in produced)

        await wait_for(every_order_handled, 120, "every order's link on order-links", every=1)

        # From the broker: every orders record below the group's committed offsets was handled.
        await assert_nothing_skipped_below_commits(deployment)
    finally:
        kept.stop()

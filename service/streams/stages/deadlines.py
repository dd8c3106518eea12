"""Late-delivery alerts: the sweep of the deadlines that have passed.

The orders stage writes a row of the `delivery-deadlines` table for each (order event, integration
with `deliverWithinMinutes`), in the order's partition, keyed by its due time first
(`planning/deadlines.py`). Every second this sweep seeks to the start of each of the worker's
partitions of the table and reads its rows until the first one not yet due: a deadline costs one
read when it falls due, never a scan of the table or of the orders. For each due row the order's view
(same key, same partition: order-view is keyed by orderId too) says what became of the event's
deliveries; a late one is told to the integration's failure list, counted, and marked in the order's
view (through order-activity, folded by the view's stage, so the mark survives a restart or a
rebalance); then the row is removed. A row read again (the order event handled again after a crash)
finds the mark and tells nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from itertools import islice

from service import metrics
from service.app import app, deadlines_table, notifications_topic, order_events_topic
from service.planning.deadlines import TABLE_START, due_keys, due_ms, late_alert, late_mark
from service.planning.notifications import late_notification
from service.streams.machinery.publish import publish
from service.streams.machinery.row_cache import PartitionEvent, handling
from service.streams.stages.order_view import order_activity_topic, view_rows
from service.streams.state.live_views import find_integration

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
# A result decided outside the order's partition (a retry started by its sweep) reaches the view a
# round of the barrier later: a deadline is judged this long after it passed, so that a delivery made
# just in time is seen as such.
SETTLE_SECONDS = 2.0
ROWS_PER_SWEEP = 200  # per partition: a backlog of due rows (a worker down for an hour) goes in steps


@app.task
async def sweep_deadlines() -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await settle_due_deadlines()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping the delivery deadlines failed; the next sweep tries again")


def active_partitions() -> list[int]:
    topic = deadlines_table.changelog_topic.get_topic_name()
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


async def settle_due_deadlines() -> int:
    """Every due row of this worker's partitions (up to `ROWS_PER_SWEEP` each): judged, told if late,
    removed. Returns how many rows were settled."""
    if app.rebalancing or app.in_recovery:
        return 0
    store = deadlines_table.data
    now = datetime.now(UTC)
    cutoff = due_ms(now) - int(SETTLE_SECONDS * 1000)
    settled = 0
    for partition in active_partitions():
        db = store._dbs.get(partition)
        if db is None:
            continue
        # Read before any await: the iterator must not outlive a rebalance.
        keys = list(islice(due_keys(db.keys(from_key=TABLE_START), cutoff), ROWS_PER_SWEEP))
        for key in keys:
            if app.rebalancing:
                return settled  # the partition may be leaving: its rows wait for their owner
            await settle_deadline(partition, key, now)
            settled += 1
    return settled


async def settle_deadline(partition: int, key: str, now: datetime) -> None:
    # order-events stands for the table's source: as many partitions as its changelog.
    here = PartitionEvent(order_events_topic.get_topic_name(), partition)
    with handling(here):
        row = deadlines_table.get(key)
    if row is None:
        return
    with handling(here):
        doc = view_rows.get(row["orderId"])
    alert = late_alert(row, doc, await find_integration(row["integrationId"]), now)
    if alert is not None:
        # The e-mail before the mark: a worker that dies between the two tells once more after the
        # restart (at-least-once, as every notice), never not at all.
        notification = late_notification(alert)
        if notification is not None:
            await publish(notifications_topic, [(row["orderId"], notification)])
        await publish(order_activity_topic, [(row["orderId"], {"activity": "late", "late": late_mark(alert)})])
        metrics.late_deliveries.labels(row["integrationType"], row["integrationId"]).inc()
        log.warning(
            "delivery late",
            extra={
                "orderId": row["orderId"],
                "eventId": row["eventId"],
                "integrationId": row["integrationId"],
                "states": sorted({d.state for d in alert.deliveries}),
                "notified": notification is not None,
            },
        )
    with handling(here):
        deadlines_table.pop(key, None)

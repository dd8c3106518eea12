"""Retries and final failures.

deliveries-retry holds failed commands with the time their next attempt is due. A retry due within a
second waits in its task and runs; one due later becomes a row of the `waiting-retries` table
(`waiting_room.py`) and its message is acknowledged once the row is written, so waiting holds no slot
of this agent and no commit of its partition, and one tenant's thousands of waiting retries never
keep another's from being read. A sweep every second starts the rows that are due, the earliest
first and a few per integration at a time, through the same slots as first attempts; a row is
deleted once its attempt has finished, so a stop, a crash or a revocation before that leaves it for
the partition's next owner (the table is recovered from its changelog like every other). A delivery
parked to wait for its integration's rate (`paced`) always becomes a row, and the sweep starts no more
of an integration's rows than its rate has slots for before the next sweep, one order's rows to one
integration one after another. A retry is dropped when the order was cancelled after the event
being delivered. deliveries-failed turns into failure notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from faust.types import StreamT

from service import metrics
from service.app import (
    app,
    deliveries_failed_topic,
    deliveries_retry_topic,
    notifications_topic,
    settings,
    waiting_retries_table,
)
from service.contracts import DeliveryCommand
from service.destinations.slots import Paced
from service.planning.notifications import failure_notification
from service.streams.machinery.concurrency import handle_concurrently, idle, revoked_partitions
from service.streams.machinery.publish import publish
from service.streams.machinery.rejects import handle_each
from service.streams.machinery.row_cache import PartitionEvent, handling
from service.streams.machinery.runtime import runtime
from service.streams.machinery.sequencing import Sequencer
from service.streams.stages.deliver import PACED_WAIT_SECONDS, attempt, dropped_if_superseded, log_ids
from service.streams.stages.health import health_reports
from service.streams.state.live_views import find_integration, integrations_view
from service.streams.state.parked import line_of, parked
from service.streams.state.waiting_room import Waiting, census, due_rows, integration_start, rows_to_start, waiting_key

log = logging.getLogger(__name__)

# A retry due this soon waits in its task: writing and sweeping a row would take about as long.
DUE_NOW_SECONDS = 1.0
SWEEP_SECONDS = 1.0
SWEEP_GATHER_SECONDS = 0.05
CENSUS_SECONDS = 15.0
PACED_HORIZON_SECONDS = 2 * SWEEP_SECONDS


@app.agent(deliveries_retry_topic)
async def retry_deliveries(stream: StreamT[Any]) -> None:
    await handle_concurrently(
        stream,
        retry_one,
        name="retry",
    )


async def retry_one(event: Any) -> None:
    command = DeliveryCommand.model_validate_json(event.value)
    wait = (command.dueAt - datetime.now(UTC)).total_seconds() if command.dueAt is not None else 0.0
    # A delivery parked for its integration's rate always waits in the room: the sweep starts as
    # many as the rate has room for.
    if wait > DUE_NOW_SECONDS or command.paced:
        wait_in_room(event, command, orjson.loads(event.value))
        return
    if wait > 0:
        with idle():
            await asyncio.sleep(wait)
    try:
        await run_retry(command, wait_at_most=PACED_WAIT_SECONDS)
    except Paced as paced:
        waiting = command.model_copy(update={"dueAt": datetime.fromtimestamp(paced.due, UTC), "paced": True})
        wait_in_room(event, waiting, waiting.model_dump(mode="json"))


def wait_in_room(event: Any, command: DeliveryCommand, doc: dict[str, Any]) -> None:
    with handling(event):
        waiting_retries_table[waiting_key(command)] = doc
    sweep.integrations[event.message.partition].add(command.integrationId)


async def run_retry(command: DeliveryCommand, *, wait_at_most: float | None = None) -> None:
    # Read when its time has come: a cancellation may have arrived meanwhile.
    if await dropped_if_superseded(command):
        return
    await attempt(command, wait_at_most=wait_at_most)


class Sweep:
    """The waiting rows started and not yet finished, by key, with their partition and task; and, per
    partition, the integrations that have rows (from the last census and the rows written since)."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[int, Waiting, asyncio.Task[None]]] = {}
        self.integrations: dict[int, set[str]] = defaultdict(set)
        self.counted = 0.0
        self.tiers: set[str] = set()
        self.wake = asyncio.Event()
        self.turns = Sequencer()

    def start(self, partition: int, row: Waiting) -> None:
        task = asyncio.create_task(self._run(partition, row))
        self.running[row.key] = (partition, row, task)
        task.add_done_callback(lambda _: self._finished(row.key))

    def _finished(self, key: str) -> None:
        self.running.pop(key, None)
        self.wake.set()  # its integration has room again: no need to wait for the next second

    async def _run(self, partition: int, row: Waiting) -> None:
        turn = None
        try:
            stored = waiting_retries_table.get(row.key)
            command = DeliveryCommand.model_validate(stored) if stored is not None else None
            # Taken as the task begins, in the order the sweep started the rows (their due order): one
            # order's deliveries to one integration run one after another, as in the deliver agent.
            line = line_of(command) if command is not None else None
            turn = self.turns.register(line) if line is not None else None
            if turn is not None:
                await turn.wait()
            if command is not None:
                await run_retry(command)
                if command.paced:
                    parked.done(command)
            with handling(PartitionEvent(deliveries_retry_topic.get_topic_name(), partition)):
                waiting_retries_table.pop(row.key, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left in place: a later sweep starts it again (attempt() records its own failures, so
            # this is the broker or the table, which pass).
            log.exception("a due retry could not be run; it stays waiting", extra={"integrationId": row.integration_id})
            await asyncio.sleep(1.0)
        finally:
            if turn is not None:
                turn.release()

    def cancel(self, partitions: set[int] | None = None) -> int:
        chosen = [task for p, _, task in self.running.values() if partitions is None or p in partitions]
        for task in chosen:
            task.cancel()
        return len(chosen)


sweep = Sweep()


def active_partitions() -> list[int]:
    topic = waiting_retries_table.changelog_topic.get_topic_name()
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


@app.task
async def sweep_waiting_retries() -> None:
    """Every second, and soon after a running retry finishes (its integration has room again)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sweep.wake.wait(), SWEEP_SECONDS)
        await asyncio.sleep(SWEEP_GATHER_SECONDS)  # the retries finishing together: one sweep for them
        sweep.wake.clear()
        try:
            start_due_retries()
        except Exception:
            log.exception("sweeping the waiting retries failed; the next sweep tries again")


def start_due_retries() -> None:
    if app.rebalancing or app.in_recovery:
        return
    store = waiting_retries_table.data
    partitions = [(p, store._dbs[p]) for p in active_partitions() if p in store._dbs]
    if time.monotonic() - sweep.counted > CENSUS_SECONDS or set(sweep.integrations) != {p for p, _ in partitions}:
        take_census(store, partitions)  # also at once for partitions just assigned
    now_ms = int(time.time() * 1000)
    limit = 2 * settings.integration_concurrency
    running = set(sweep.running)
    per_integration = Counter(row.integration_id for _, row, _ in sweep.running.values())
    room = settings.max_messages_in_flight - len(sweep.running)
    slots = runtime().slots
    started: Counter[str] = Counter()
    for partition, db in partitions:
        for integration_id in sorted(sweep.integrations[partition]):
            free = min(limit - per_integration[integration_id], room)
            # No more than its rate lets begin before the sweep after next (sweeps come a little more
            # than a second apart: a slot just beyond the next one's horizon would otherwise pass
            # unseen); the others wait in their rows. (Rows started by earlier sweeps have taken their
            # slots by now; this sweep's have not.)
            paced_room = slots.room(integrations_view.get(integration_id), PACED_HORIZON_SECONDS)
            if paced_room is not None:
                free = min(free, paced_room - started[integration_id])
            if free <= 0:
                continue
            keys = db.keys(from_key=integration_start(integration_id))
            # Its running rows are still in the table, ahead of the ones to start.
            rows = rows_to_start(due_rows(keys, integration_id, now_ms), running, free)
            for row in rows:
                sweep.start(partition, row)
            per_integration[integration_id] += len(rows)
            started[integration_id] += len(rows)
            room -= len(rows)


def take_census(store: Any, partitions: list[tuple[int, Any]]) -> None:
    """Which integrations have rows in each partition (rows of one no longer configured included: its
    retries still run, and are recorded as skipped), and the gauge of waiting retries by tier."""
    sweep.counted = time.monotonic()
    tiers: Counter[str] = Counter()
    sweep.integrations.clear()
    for partition, db in partitions:
        found = census(store._visible_keys(db))
        sweep.integrations[partition] = found.integrations  # an empty set too: the partition is counted
        tiers += found.tiers
    sweep.tiers |= set(tiers)
    for tier in sweep.tiers:
        metrics.retries_waiting.labels(tier).set(tiers.get(tier, 0))


async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    topic = deliveries_retry_topic.get_topic_name()
    revoked = {tp.partition for tp in revoked_partitions(args, kwargs) if tp.topic == topic}
    parked.revoked(revoked)  # their next owner runs what waits there
    if sweep.cancel(revoked):
        log.info("due retries of revoked partitions cancelled: they stay waiting for the next owner")


app.on_partitions_revoked.connect(cast(Any, _on_revoked))


@app.before_stop
async def cancel_due_retries() -> None:
    """Before the tables close: a retry cut short stays in its row and runs again after the restart."""
    tasks = [task for _, _, task in sweep.running.values()]
    if sweep.cancel():
        await asyncio.wait(tasks, timeout=5.0)


@app.agent(deliveries_failed_topic)
async def notify_failures(stream: StreamT[Any]) -> None:
    await handle_each(stream, notify_failure)


async def notify_failure(event: Any) -> None:
    doc = orjson.loads(event.value)
    command = DeliveryCommand.model_validate(doc["command"])
    if doc.get("kept"):
        # Its integration is turned off: the one e-mail saying so covers it, and it counts no further.
        log.info("delivery kept as failed: its integration is turned off", extra=log_ids(command))
        return
    log.error(
        "delivery failed for good",
        extra={**log_ids(command), "attempts": command.attempt},
    )
    last = command.errors[-1] if command.errors else None
    gone = bool(doc.get("gone"))
    await health_reports.failed(
        command.integrationId, last.at if last else datetime.now(UTC), last.error if last else doc["reason"], gone=gone
    )
    if gone:
        return  # the receiver is gone: the e-mail that its integration is turned off says so, once
    notification = failure_notification(command, await find_integration(command.integrationId), doc["reason"])
    if notification is not None:
        await publish(notifications_topic, [(command.deliveryId, notification)])

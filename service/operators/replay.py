"""Replays and re-drives, run: read a window of a topic, choose (planning/replay.py), publish again.

Used by the CLI and by the operator API alike. Reading uses its own group-less consumer, so the
workers' offsets never move; publishing keeps each key's messages in their original order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from service.catalog import Catalog
from service.contracts import DeliveryCommand
from service.kafka_admin import client_options, topic_partitions
from service.planning.commands import delivery_key
from service.planning.replay import (
    Failed,
    RedriveFilter,
    ReplayFilter,
    Window,
    redrive_matches,
    redriven,
    replay_headers,
    replay_matches,
    still_failed,
)
from service.settings import Settings

SEND_BATCH = 1000
# (read so far, messages in the window): a progress bar's figures.
Progress = Callable[[int, int], None]


@dataclass
class Tally:
    read: int = 0
    matched: int = 0
    published: int = 0
    dry_run: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    skipped_delivered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "read": self.read,
            "matched": self.matched,
            "published": self.published,
            "dryRun": self.dry_run,
            **({"alreadyDelivered": self.skipped_delivered} if self.skipped_delivered else {}),
        }


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def _bounds(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], window: Window
) -> dict[TopicPartition, tuple[int, int]]:
    """Each partition's [start, stop) offsets for the window, within what the log holds now."""
    first = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)

    async def at(when: datetime | None, default: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        if when is None:
            return default
        found = await consumer.offsets_for_times({tp: _ms(when) for tp in partitions})
        return {tp: (found[tp].offset if found.get(tp) is not None else end[tp]) for tp in partitions}

    if window.since is not None or window.until is not None:
        start, stop = await at(window.since, first), await at(window.until, end)
    else:
        start = {tp: max(first[tp], window.from_offset or 0) for tp in partitions}
        stop = {tp: end[tp] if window.to_offset is None else min(end[tp], window.to_offset) for tp in partitions}
    return {tp: (start[tp], stop[tp]) for tp in partitions if start[tp] < stop[tp]}


async def read_window(
    settings: Settings, topic: str, window: Window, progress: Progress | None = None
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of the window, partition by partition, each in offset order."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            raise LookupError(f"topic {topic} does not exist")
        if window.partition is not None:
            partitions = [tp for tp in partitions if tp.partition == window.partition]
            if not partitions:
                raise LookupError(f"topic {topic} has no partition {window.partition}")
        bounds = await _bounds(consumer, partitions, window)
        total = sum(stop - start for start, stop in bounds.values())
        done = 0
        if progress:
            progress(0, total)
        for tp, (start, stop) in sorted(bounds.items()):
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < stop:
                for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    for record in records:
                        if record.offset >= stop:
                            break
                        done += 1
                        yield record
                if progress:
                    progress(done, total)
    finally:
        await consumer.stop()


async def _producer(settings: Settings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    return producer


async def replay(
    settings: Settings,
    catalog: Catalog,
    window: Window,
    chosen: ReplayFilter,
    *,
    to_integration: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Tally:
    """Re-publish the window's matching events into their own topic, marked as a replay."""
    window.check()
    chosen.check()
    tally = Tally(dry_run=dry_run)
    topic = catalog[chosen.topic].name
    headers = replay_headers(tally.id, to_integration)
    producer = None if dry_run else await _producer(settings)
    sent: list[asyncio.Future[Any]] = []
    try:
        async for record in read_window(settings, topic, window, progress):
            tally.read += 1
            if not replay_matches(chosen, record.value, record.headers):
                continue
            tally.matched += 1
            if producer is not None:
                # The idempotent producer keeps a partition's sends in order: a key's events go back in
                # the order they were first published, without waiting for each acknowledgement.
                sent.append(await producer.send(topic, key=record.key, value=record.value, headers=headers))
                if len(sent) >= SEND_BATCH:
                    tally.published += len(await asyncio.gather(*sent))
                    sent = []
        tally.published += len(await asyncio.gather(*sent))
    finally:
        if producer is not None:
            await producer.stop()
    return tally


async def _delivered_since(settings: Settings, topic: str, since: datetime, wanted: set[str]) -> dict[str, datetime]:
    """When each wanted delivery was last delivered, from delivery-results since `since`."""
    found: dict[str, datetime] = {}
    async for record in read_window(settings, topic, Window(since=since)):
        try:
            doc = orjson.loads(record.value or b"null")
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("outcome") == "delivered" and doc.get("deliveryId") in wanted:
            found[doc["deliveryId"]] = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return found


async def redrive(
    settings: Settings,
    catalog: Catalog,
    chosen: RedriveFilter,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Tally:
    """Send the matching failed deliveries (not delivered since) back to the retry path, due now."""
    tally = Tally(dry_run=dry_run)
    window = Window(since=chosen.since or datetime.fromtimestamp(0, UTC), until=chosen.until)
    failures: list[Failed] = []
    async for record in read_window(settings, catalog["deliveries-failed"].name, window, progress):
        tally.read += 1
        failed_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        try:
            doc = orjson.loads(record.value or b"null")
            if not redrive_matches(chosen, doc, failed_at):
                continue
            failures.append(Failed(DeliveryCommand.model_validate(doc["command"]), failed_at))
        except (orjson.JSONDecodeError, ValidationError):
            continue
    if failures:
        earliest = min(f.failed_at for f in failures)
        wanted = {f.command.deliveryId for f in failures}
        delivered = await _delivered_since(settings, catalog["delivery-results"].name, earliest, wanted)
        chosen_failures = still_failed(failures, delivered)
        tally.skipped_delivered = len({f.command.deliveryId for f in failures}) - len(chosen_failures)
    else:
        chosen_failures = []
    tally.matched = len(chosen_failures)
    if dry_run or not chosen_failures:
        return tally
    producer = await _producer(settings)
    try:
        now = datetime.now(UTC)
        topic = catalog["deliveries-retry"].name
        for failure in sorted(chosen_failures, key=lambda f: f.failed_at):
            command = redriven(failure.command, tally.id, now)
            await producer.send_and_wait(
                topic, key=delivery_key(command).encode(), value=command.model_dump_json().encode()
            )
            tally.published += 1
    finally:
        await producer.stop()
    return tally

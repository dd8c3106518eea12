"""What the broker says about a deployment's consumer group: its state and members, and the broker's
side of "nothing lost": every input record below the group's committed offsets was handled.

A committed offset on `recipes` or `orders` says that every record before it was handled. For an
order, handled means its links are on `order-links` (every order has a line; service/streams/
stages/ingest.py: same orderId and eventId), or it was re-published onto `order-events` for a worker to
handle from there; for a recipe, that it is in the recipes table's changelog (the join stores it,
same recipeId and eventId) or was re-published onto `recipe-events`; for both, or refused into
`invalid-events` (which records the source topic, partition and offset). A record below a commit that
reached none of them was skipped: committed although no agent handled it. Records at or past the
commit are not judged (after a hard kill the group may simply not have committed them yet).

The group is only looked at (the admin client's DescribeGroups and OffsetFetch): never joined.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from service.kafka_admin import end_offsets
from tests.deployments import Deployment
from tests.waiting import wait_for

# Each input topic, where its handled records go (topic keys of the deployment), and the field that
# names the event's subject.
INPUTS = {
    "recipes": (("recipe-events", "app-recipes-changelog"), "recipeId"),
    "orders": (("order-events", "order-links"), "orderId"),
}
QUIET = 6.0  # commits that have not moved for this long have settled: over two of Faust's 2.8 s commits
SETTLE = 60.0  # the longest the commits may keep moving before the check takes them as they are


@dataclass
class PartitionCheck:
    """One input partition: its committed offset and what became of every record below it."""

    committed: int
    handled: int = 0  # their effects (or the re-published event) are on the broker
    refused: int = 0
    skipped: list[int] = field(default_factory=list)


@dataclass
class BelowCommits:
    group: str
    settled: bool
    partitions: dict[tuple[str, int], PartitionCheck]

    @property
    def checked(self) -> int:
        return sum(p.handled + p.refused + len(p.skipped) for p in self.partitions.values())

    def problems(self) -> list[str]:
        found = []
        for (topic, partition), p in sorted(self.partitions.items()):
            if p.skipped:
                below = p.handled + p.refused + len(p.skipped)
                found.append(
                    f"{topic} partition {partition}: {len(p.skipped)} of the {below} records below the committed "
                    f"offset {p.committed} reached none of {', '.join(INPUTS[topic][0])} and invalid-events, "
                    f"offsets {p.skipped[:40]}"
                )
        return found

    def summary(self) -> str:
        parts = [
            f"{topic}/{partition} committed {p.committed}: {p.handled} handled, {p.refused} refused, "
            f"{len(p.skipped)} skipped"
            for (topic, partition), p in sorted(self.partitions.items())
        ]
        state = "settled" if self.settled else f"still moving after {SETTLE:.0f}s"
        return f"group {self.group}'s commits ({state}): " + "; ".join(parts)


def group_id(deployment: Deployment) -> str:
    return deployment.env()["OUTBOUND_APP_ID"]  # the Faust app id is the consumer group


async def group_state(deployment: Deployment) -> tuple[str, int]:
    """The group's state as the coordinator reports it ("Stable", "PreparingRebalance", ...) and its number
    of members; ("unknown", 0) while the coordinator cannot answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        [answer] = await admin.describe_consumer_groups([group_id(deployment)])
    except KafkaError:
        return "unknown", 0
    finally:
        await admin.close()
    [group] = answer.to_object()["groups"]
    return str(group["state"]), len(group["members"])


async def committed_offsets(deployment: Deployment) -> dict[TopicPartition, int] | None:
    """The group's committed offsets on the input topics; None when the coordinator cannot answer now
    (it may be loading, or the group rebalancing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id(deployment))
    except KafkaError:
        return None
    finally:
        await admin.close()
    inputs = {deployment.topic(key) for key in INPUTS}
    return {tp: meta.offset for tp, meta in offsets.items() if tp.topic in inputs and meta.offset >= 0}


async def settled_commits(deployment: Deployment) -> tuple[dict[TopicPartition, int], bool]:
    """The commits once they reach the end of every partition or stop moving for QUIET seconds; after
    SETTLE seconds, the last ones read (a snapshot is still a fair judge of what is below it)."""
    last: dict[str, Any] = {"offsets": None, "since": time.monotonic()}

    async def settled() -> dict[TopicPartition, int] | None:
        offsets = await committed_offsets(deployment)
        if offsets is None:
            return None
        ends: dict[TopicPartition, int] = {}
        for key in INPUTS:
            ends.update(await end_offsets({"bootstrap_servers": deployment.bootstrap}, deployment.topic(key)))
        if offsets != last["offsets"]:
            last.update(offsets=offsets, since=time.monotonic())
            if all(offsets.get(tp, 0) >= end for tp, end in ends.items()):
                return offsets
            return None
        return offsets if time.monotonic() - last["since"] >= QUIET else None

    try:
        return await wait_for(settled, SETTLE, "the group's commits to settle", 1.0), True
    except AssertionError:
        return last["offsets"] or {}, False


def event_identity(value: bytes | None, id_field: str) -> tuple[str, str] | None:
    try:
        doc = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return (str(doc.get(id_field)), str(doc.get("eventId"))) if isinstance(doc, dict) else None


async def below_commits(deployment: Deployment) -> BelowCommits:
    """Where every record below the group's commits went. The commits are read first, the topics
    after: whatever a handled record caused was on the broker before its offset was committed."""
    commits, settled = await settled_commits(deployment)
    refused = {(d["sourceTopic"], d["partition"], d["offset"]) for d in await deployment.read_json("invalid-events")}
    partitions: dict[tuple[str, int], PartitionCheck] = {}
    for key, (handled_on, id_field) in INPUTS.items():
        handled = {event_identity(r.value, id_field) for topic in handled_on for r in await deployment.read(topic)}
        for record in await deployment.read(key):
            committed = commits.get(TopicPartition(record.topic, record.partition))
            if committed is None or record.offset >= committed:
                continue
            check = partitions.setdefault((key, record.partition), PartitionCheck(committed))
            if (record.topic, record.partition, record.offset) in refused:
                check.refused += 1
            elif (identity := event_identity(record.value, id_field)) is not None and identity in handled:
                check.handled += 1
            else:
                check.skipped.append(record.offset)
    return BelowCommits(group_id(deployment), settled, partitions)


async def assert_nothing_skipped_below_commits(deployment: Deployment) -> int:
    """Fail naming each partition and the offsets of records below a commit that no agent handled;
    return how many records below the commits were checked."""
    found = await below_commits(deployment)
    problems = found.problems()
    assert not problems, "; ".join(problems) + f" ({found.summary()})"
    return found.checked

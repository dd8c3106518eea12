"""Where the record being handled sits, against where the service's producer would put a key."""

from __future__ import annotations

from typing import Any, cast

from faust.streams import current_event

from service.app import app, settings
from service.planning.pacing import Share
from service.planning.placement import already_placed, service_partition

_counts: dict[str, int | None] = {}
_counted_in: list[int | None] = [None]


def topic_partitions(topic: str) -> int | None:
    """The topic's partition count in the broker's metadata as the worker's consumer holds it (None:
    unknown), read once per generation of the group (a count that changes makes the group rebalance).

    Faust's own `Consumer.topic_partitions` reads aiokafka's group snapshot, which only the group's
    leader keeps: on every other worker it knows no topic. aiokafka's consumer answers from its
    cluster metadata on every worker (tests/unit/test_placement.py pins both)."""
    generation = app.consumer_generation_id
    if _counted_in[0] != generation:
        _counts.clear()
        _counted_in[0] = generation
    count = _counts.get(topic)
    if count is None:
        count = _counts[topic] = _count(topic)
    return count


def _count(topic: str) -> int | None:
    try:
        partitions = cast(Any, app.consumer)._thread._ensure_consumer().partitions_for_topic(topic)
    except Exception:  # not started, or stopping: unknown, so every record takes the long way
        return None
    return len(partitions) if partitions else None


def placed_for(event: Any, key: str, target_topic: str) -> bool:
    """True when `event` already sits on the partition of `target_topic` that the service's producer
    would give `key`, and both topics have as many partitions: re-publishing it there is a hop for
    nothing."""
    message = event.message
    return already_placed(
        key.encode(), message.partition, topic_partitions(message.topic), topic_partitions(target_topic)
    )


def handled_here(key: str, partitions: int) -> Any | None:
    """The record being handled, when it sits on `key`'s partition of a table with `partitions`
    (so the table's row for `key` may be changed while handling it); None otherwise."""
    event = current_event()
    message = getattr(event, "message", None)
    if message is None or not hasattr(event, "ack"):
        return None
    if topic_partitions(message.topic) != partitions:
        return None
    return event if service_partition(key.encode(), partitions) == message.partition else None


def owned_share(topic: str) -> Share:
    """The partitions of `topic` this worker owns now, out of its count (the broker's, else the
    catalog's): the worker's share of every integration's rate (`planning/pacing.py`). Read from the
    assignment each time: it is a few dozen partitions, and a share must never outlive a rebalance."""
    try:
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)
    except Exception:  # not assigned yet
        owned = frozenset()
    return Share(owned, topic_partitions(topic) or settings.partitions)

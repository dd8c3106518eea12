"""The entrance of an upstream record: validated, then handled where it sits or re-published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from service.planning.replay import replay_marks
from service.streams.machinery.barrier import barrier
from service.streams.machinery.partitions import placed_for
from service.streams.machinery.rejects import accepted
from service.validation import Kind, M


async def enter(
    kind: Kind[M],
    event: Any,
    key: Callable[[M], str],
    internal_topic: Any,
    internal_doc: Callable[[M], Any],
    handle: Callable[[M, Any], Awaitable[None]],
) -> None:
    """Validate an upstream record (refused: parked in invalid-events). When it already sits on the
    partition of `internal_topic` the service's producer would give its key, handle it at once; else
    re-publish `internal_doc` keyed by the service, with the record's replay marks, to be handled from
    there (the tables' rows live in the partitions the service's partitioner chooses)."""
    model = await accepted(kind, event)
    if model is None:
        return
    if placed_for(event, key(model), internal_topic.get_topic_name()):
        await handle(model, event)
        return
    await barrier.send(
        internal_topic, key(model), internal_doc(model), headers=replay_marks(event.headers), cause=event
    )

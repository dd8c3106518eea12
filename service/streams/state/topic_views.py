"""Every worker's own full, live copy of a small compacted topic (integrations, the order index).

Each worker reads the whole topic with its own consumer (no group), from the beginning, for as long
as it runs: a change reaches every worker whatever the rebalances. Faust's GlobalTable was the
first choice; with two workers its standby reader missed writes made during a rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from service.kafka_admin import client_options, topic_partitions
from service.settings import Settings

V = TypeVar("V")
log = logging.getLogger(__name__)


class TopicView(Generic[V]):
    """key -> latest value that `parse` accepts; a tombstone or a refused value removes the key."""

    def __init__(self, topic: str, parse: Callable[[bytes, bytes], V | None], name: str = "") -> None:
        self.topic = topic
        self.name = name or topic
        # Why the reading task ended (it only ends on an error it cannot wait out): health reports it.
        self.failure: str | None = None
        self.parse = parse
        self.items: dict[str, V] = {}
        # Moves with every record applied: what is derived from the items is derived again only then.
        self.version = 0
        self._caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._read_more = asyncio.Event()  # set after each fetch is applied

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def wait_caught_up(self) -> None:
        """Agents wait here at start: before it, a missing key could just be not read yet."""
        await self._caught_up.wait()

    async def wait_latest(self, timeout: float = 10.0) -> None:
        """Until the view holds every record on its topic at the moment of the call: a command may
        depend on a change published just before it (an integration enabled, then re-driven), and
        this worker's copy can be a fetch behind. Gives up quietly after `timeout` (the copy is as
        fresh as the broker lets it be)."""
        await self.wait_caught_up()
        consumer, partitions = self._consumer, self._partitions
        if consumer is None or not partitions:
            return
        with contextlib.suppress(KafkaError, TimeoutError):
            async with asyncio.timeout(timeout):
                end = await consumer.end_offsets(partitions)
                while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                    self._read_more.clear()
                    await self._read_more.wait()

    def get(self, key: str) -> V | None:
        return self.items.get(key)

    def values(self) -> list[V]:
        return list(self.items.values())

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        self.version += 1
        parsed = self.parse(key, value) if value is not None else None
        if parsed is None:
            self.items.pop(name, None)
        else:
            self.items[name] = parsed

    async def run(self, settings: Settings) -> None:
        """Read forever; reconnects after broker errors. Any other error ends the reading, and health says
        so. It returns instead of raising: Faust crashes the whole worker when an app task raises
        (mode's Service._execute_task), and liveness, not a crash, is how this is reported."""
        try:
            while True:
                try:
                    await self._follow(settings)
                except KafkaError as exc:
                    log.warning(
                        "topic view lost the broker; reconnecting", extra={"topic": self.topic, "error": str(exc)}
                    )
                    await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.exception("topic view stopped", extra={"topic": self.topic})

    async def _follow(self, settings: Settings) -> None:
        consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self.topic)
            if not partitions:
                raise KafkaError(f"topic {self.topic} does not exist (run `outbound topics apply`)")
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            self._consumer, self._partitions = consumer, list(partitions)
            while True:
                batch = await consumer.getmany(*partitions, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.apply(record.key, record.value)
                self._read_more.set()
                if not self.caught_up and not [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                    self._caught_up.set()
                    log.info("topic view caught up", extra={"topic": self.topic, "keys": len(self.items)})
        finally:
            self._consumer = None
            self._read_more.set()
            await consumer.stop()

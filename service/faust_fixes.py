"""Two corrections to faust-streaming 0.15.3, both of which made a restarted worker commit offsets of
messages no agent had handled. Each subclasses the class it corrects; the app installs them
(service/app.py: `TableManager` setting, `App._new_transport`).

1. Table recovery seeks the stream partitions to their committed offsets before they resume.

faust-streaming 0.15.3 (`faust/tables/recovery.py`, `Recovery._resume_streams` and
`Recovery.on_recovery_completed`) resumes fetching the stream partitions and only then seeks them to
their committed offsets, while the flow is already active from the changelog recovery. Messages fetched
in that window reach the agents' queues and advance the consumer's read offsets; the seek then moves the
read offsets back, the next message fetched looks like a jump over a compacted range (the consumer's
"gap", which counts as acknowledged), and `flow_control.resume()` empties the queues. The offsets of the
messages dropped that way are committed although no agent ever saw them: orders lost after a worker
restart (seen as 15-23 of 400 orders missing in the hard-kill reliability test; upstream: faust-streaming
issue 596). Here the seek happens while the stream partitions are still paused, and the partitions and
the flow resume together with no await between them, so the first message fetched is the committed one.

2. A fetch returns only records of the partitions that were active when it started.

Faust hands aiokafka its live set of active partitions; aiokafka reads an empty set as "every
partition". When the last active partitions are paused while a fetch waits (the changelogs, at the end
of a recovery), the fetch returns records of the still-paused stream partitions, Faust drops them as
inactive, and aiokafka has counted them as consumed. A partition with a committed offset is sought
back later; one without (a topic this group never committed, e.g. the first retry ever written) lost
its messages until the next restart. Here a fetch is given a copy of the set, and none at all when
the set is empty.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class SeekFirstRecovery(Recovery):
    async def _resume_streams(self, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume_partitions()
        self.completed.set()
        self.log.info("Resuming flow...")
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
            return
        await self._seek_then_resume_partitions()
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume_partitions(self) -> None:
        """Seek while the stream partitions are paused (nothing of them is fetched meanwhile), then resume
        them; the caller resumes the flow before its next await."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        if not assignment:
            self.log.info("Resuming streams with empty assignment")
            return
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in consumer.assignment() if not self._is_changelog_tp(tp)})


class TableManager(FaustTableManager):
    """Faust's table manager with the recovery above (the app's `TableManager` setting names it)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class ActiveOnlyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        active = set(active_partitions)  # a copy: Faust's own set changes while the fetch waits
        if not active:
            return {}
        return await super()._fetch_records(consumer, active, timeout=timeout, max_records=max_records)


class ActiveOnlyConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ActiveOnlyConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's Kafka transport with the consumer above."""

    Consumer = ActiveOnlyConsumer

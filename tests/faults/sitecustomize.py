"""Test-only faults for a worker process started with this folder on PYTHONPATH (Python imports
`sitecustomize` at start): a record with the key in TEST_FAULT_BLOCK_KEY blocks the event loop for
TEST_FAULT_BLOCK_SECONDS, one with the key in TEST_FAULT_POISON_KEY kills the view that reads it,
as a bug would. The service itself has no such switch."""

from __future__ import annotations

import contextlib
import os
import time

_poison = os.environ.get("TEST_FAULT_POISON_KEY")
_block = os.environ.get("TEST_FAULT_BLOCK_KEY")

if _poison or _block:
    from service.streams.state import topic_views

    _apply = topic_views.TopicView.apply

    def _faulty_apply(self, key, value):
        if _block and key == _block.encode():
            time.sleep(float(os.environ.get("TEST_FAULT_BLOCK_SECONDS", "6")))
        if _poison and key == _poison.encode():
            raise RuntimeError("a record this view cannot read (test fault)")
        return _apply(self, key, value)

    topic_views.TopicView.apply = _faulty_apply

if os.environ.get("TEST_FAULT_HOLD_STALE_FETCH"):
    # A fetch that was waiting when the group began to rebalance goes on waiting across it, as
    # aiokafka's does (it waits for the new assignment inside the same call), and drains what lies at
    # the kept partitions' positions only once the recovery has sought them, while they are still
    # paused: the window in which Faust dropped such records without seeking back (the rebalance loss).
    import asyncio
    import contextlib
    import logging

    from service import faust_fixes

    _consumer = faust_fixes.Transport.Consumer
    _getmany, _perform_seek = _consumer._getmany, _consumer.perform_seek
    _sought: dict[int, asyncio.Event] = {}
    _state = {"held": 0, "fetches": 0}
    _log = logging.getLogger("service.test_fault")

    def _seek_done(generation: int) -> asyncio.Event:
        return _sought.setdefault(generation, asyncio.Event())

    async def _sought_after(self, generation: int) -> bool:
        """Until the next generation's seek is done; False where the fault cannot apply: a recovery
        that reads changelogs needs this very fetch loop before it seeks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            now = self.app.consumer_generation_id
            if now != generation and _seek_done(now).is_set():
                return True
            if self.app.in_recovery:
                # Also for a fetch begun in the new generation while its recovery reads changelogs:
                # holding it would stall the very recovery whose seek it waits for.
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_seek_done(now).wait(), 0.05)
        return False

    async def _held_getmany(self, active_partitions, timeout):
        _state["fetches"] += 1
        generation = self.app.consumer_generation_id
        active = set(active_partitions or ())
        records = await _getmany(self, active_partitions, timeout)
        if active and (self.app.rebalancing or self.app.consumer_generation_id != generation):
            _state["held"] += 1
            try:
                if not await _sought_after(self, generation):
                    return records
                thread = self._thread
                client = thread._ensure_consumer()
                # What aiokafka hands this fetch from the sought positions, until it holds input records.
                records = {}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 5
                while loop.time() < deadline and not any(tp.topic.endswith("orders") for tp in records):
                    more = await thread.call_thread(
                        client._fetcher.fetched_records, active, timeout=0.5, max_records=client._max_poll_records
                    )
                    for tp, batch in more.items():
                        records.setdefault(tp, []).extend(batch)
                drained = {f"{tp.topic}-{tp.partition}": [r[0].offset, r[-1].offset] for tp, r in records.items() if r}
                _log.warning(
                    "test fault: stale fetch drained after the seek",
                    extra={
                        "drained": drained,
                        "paused": sorted(f"{tp.topic}-{tp.partition}" for tp in self._paused_partitions),
                        "flow": self.flow_active,
                    },
                )
            finally:
                _state["held"] -= 1
        return records

    async def _seek_then_release(self):
        await _perform_seek(self)
        fetches = _state["fetches"]
        _seek_done(self.app.consumer_generation_id).set()
        if _state["held"]:
            # Until the drain loop has worked through the stale fetch and fetches again.
            for _ in range(5_000):
                if _state["fetches"] > fetches:
                    break
                await asyncio.sleep(0.001)
            _log.warning("test fault: stale fetch released after the seek")

    _consumer._getmany = _held_getmany
    _consumer.perform_seek = _seek_then_release

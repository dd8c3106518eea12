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
    from service.streams import views

    _apply = views.TopicView.apply

    def _faulty_apply(self, key, value):
        if _block and key == _block.encode():
            time.sleep(float(os.environ.get("TEST_FAULT_BLOCK_SECONDS", "6")))
        if _poison and key == _poison.encode():
            raise RuntimeError("a record this view cannot read (test fault)")
        return _apply(self, key, value)

    views.TopicView.apply = _faulty_apply

if os.environ.get("TEST_FAULT_HOLD_STALE_FETCH"):
    # A fetch issued before a revocation that returns records after it is held until the recovery has
    # sought the partitions, then let through while they are still paused: the window in which Faust
    # dropped such records without seeking back (the rebalance loss).
    import asyncio
    import logging

    from service import faust_fixes

    _consumer = faust_fixes.Transport.Consumer
    _getmany, _perform_seek = _consumer._getmany, _consumer.perform_seek
    _sought: dict[int, asyncio.Event] = {}
    _state = {"held": 0, "fetches": 0}
    _log = logging.getLogger("service.test_fault")

    def _seek_done(generation: int) -> asyncio.Event:
        return _sought.setdefault(generation, asyncio.Event())

    async def _held_getmany(self, active_partitions, timeout):
        _state["fetches"] += 1
        generation = self.app.consumer_generation_id
        records = await _getmany(self, active_partitions, timeout)
        now = self.app.consumer_generation_id
        if records and now != generation:
            _state["held"] += 1
            _log.warning("test fault: stale fetch held", extra={"records": sum(len(r) for r in records.values())})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_seek_done(now).wait(), 60)
            _state["held"] -= 1
        return records

    async def _seek_then_release(self):
        await _perform_seek(self)
        done = _seek_done(self.app.consumer_generation_id)
        if _state["held"] and not done.is_set():
            fetches = _state["fetches"]
            done.set()
            # Until the drain loop has worked through the released records and fetches again.
            for _ in range(10_000):
                if _state["fetches"] > fetches:
                    break
                await asyncio.sleep(0.001)
            _log.warning("test fault: stale fetch released after the seek")
        done.set()

    _consumer._getmany = _held_getmany
    _consumer.perform_seek = _seek_then_release

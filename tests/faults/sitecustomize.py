"""Test-only faults for a worker process started with this folder on PYTHONPATH (Python imports
`sitecustomize` at start): a record with the key in TEST_FAULT_BLOCK_KEY blocks the event loop for
TEST_FAULT_BLOCK_SECONDS, one with the key in TEST_FAULT_POISON_KEY kills the view that reads it,
as a bug would. The service itself has no such switch."""

from __future__ import annotations

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

"""Static group membership (OUTBOUND_INSTANCE_ID), against the real broker."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import new_deployment
from tests.support import Worker

pytestmark = pytest.mark.integration


async def test_a_killed_worker_restarted_under_its_instance_id_at_a_new_url_is_back_at_once(kafka):
    deployment = new_deployment(kafka)
    worker = await Worker(deployment, "w", OUTBOUND_INSTANCE_ID="w-0").start().ready()
    worker.stop(signal.SIGKILL)
    started = time.monotonic()
    again = await Worker(deployment, "w2", OUTBOUND_INSTANCE_ID="w-0").start().ready(45)
    print("ready after", time.monotonic() - started)
    again.stop()

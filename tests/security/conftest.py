"""Security tests' fixtures: the loopback listener that records every connection, and a worker under
the production network policy (no private destinations, no private asset hosts) with scripted DNS
answers (tests/security/loopback.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.deployments import Deployment, Worker, new_deployment
from tests.security.loopback import LOOPBACK_NAME, Recorder, rebinding, scripted_dns
from tests.servers import Destinations, free_port


@pytest.fixture(scope="session")
async def recorder() -> AsyncIterator[Recorder]:
    running = await Recorder(free_port()).start()
    yield running
    await running.stop()


@pytest.fixture(scope="session")
def strict_deployment(kafka: str, destinations: Destinations, recorder: Recorder) -> Deployment:
    env = destinations.worker_env()
    env.update(
        OUTBOUND_ALLOW_PRIVATE_DESTINATIONS="false",
        OUTBOUND_ALLOW_PRIVATE_ASSET_HOSTS="false",
        # Asset hosts the operator listed that are (or turn out to be) internal: the address policy
        # must still refuse them.
        OUTBOUND_ASSET_HOSTS=",".join(
            f"{host}:{recorder.port}" for host in ("127.0.0.1", "localhost", "::1", rebinding("asset"), LOOPBACK_NAME)
        ),
        OUTBOUND_TESTING_DNS=json.dumps(scripted_dns()),
        OUTBOUND_RETRY_DELAYS_SECONDS="1,1",
    )
    return new_deployment(kafka, **env)


@pytest.fixture(scope="session")
async def strict_worker(strict_deployment: Deployment) -> AsyncIterator[Worker]:
    running = await Worker(strict_deployment, "strict").start().ready()
    yield running
    running.stop()

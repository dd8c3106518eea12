"""Session fixtures: one Kafka broker for the whole run, one shared deployment and worker."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.servers import Destinations, start_destinations, stop_destinations
from tests.support import Deployment, Worker, load_local_kafka, unique


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """The session's broker process (tests that pause it need its pid)."""
    local_kafka = load_local_kafka()
    home = Path(tempfile.mkdtemp(prefix="outbound-kafka-"))
    broker = local_kafka.Broker(home, local_kafka.free_port(), local_kafka.free_port())
    local_kafka.start(broker)
    yield broker
    local_kafka.stop(broker)


@pytest.fixture(scope="session")
def kafka(kafka_broker: Any) -> str:
    return str(kafka_broker.bootstrap)


def new_deployment(bootstrap: str, **extra_env: str) -> Deployment:
    deployment = Deployment(
        bootstrap=bootstrap,
        prefix=unique("t") + ".",
        workdir=Path(tempfile.mkdtemp(prefix="outbound-test-")),
        secret_key=Fernet.generate_key().decode(),
        extra_env=extra_env,
    )
    deployment.cli("topics", "apply")
    return deployment


@pytest.fixture(scope="session")
async def destinations() -> AsyncIterator[Destinations]:
    servers = await start_destinations()
    yield servers
    await stop_destinations(servers)


@pytest.fixture(scope="session")
def deployment(kafka: str, destinations: Destinations) -> Deployment:
    return new_deployment(kafka, OUTBOUND_MAX_EVENT_BYTES="200000", **destinations.worker_env())


@pytest.fixture(scope="session")
async def worker(deployment: Deployment) -> AsyncIterator[Worker]:
    running = await Worker(deployment, "shared").start().ready()
    yield running
    running.stop()

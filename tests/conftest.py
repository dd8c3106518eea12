"""Session fixtures: one Kafka broker for the whole run, one shared deployment and worker."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployments import Deployment, Worker, load_local_kafka, new_deployment
from tests.servers import Destinations, HttpServers, free_port, start_destinations, stop_destinations

# Everything a run writes (brokers' and servers' homes, deployments' work directories with the
# workers' logs) goes under one folder: removed when every test passed, kept and named when not.
RUN_ROOT = Path(tempfile.mkdtemp(prefix="outbound-run-"))


def pytest_configure(config: pytest.Config) -> None:
    tempfile.tempdir = str(RUN_ROOT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == 0:
        shutil.rmtree(RUN_ROOT, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if exitstatus != 0:
        terminalreporter.write_line(f"servers' homes and workers' logs kept in {RUN_ROOT}")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """The session's broker process (tests that pause it need its pid)."""
    local_kafka = load_local_kafka()
    home = Path(tempfile.mkdtemp(prefix="outbound-kafka-"))
    broker = local_kafka.Broker(home, local_kafka.free_port(), local_kafka.free_port())
    local_kafka.start(broker)
    yield broker
    # Its data goes with the run: no controlled shutdown to wait for (it took 10-15 s of every run).
    local_kafka.stop(broker, timeout=2.0)


@pytest.fixture(scope="session")
def kafka(kafka_broker: Any) -> str:
    return str(kafka_broker.bootstrap)


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
    running.stop(signal.SIGKILL)  # the run is over: nothing it would finish matters any more


@pytest.fixture(scope="module")
async def assets() -> AsyncIterator[HttpServers]:
    """An asset host of the module's own."""
    servers = await HttpServers(free_port()).start()
    yield servers
    await servers.stop()

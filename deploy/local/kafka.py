"""A single-node Apache Kafka (KRaft, combined broker and controller) run as a local process.

Used by the README's run command and by the test session. The broker jars come from Maven Central
through `pom.xml` beside this file and are cached outside git; every broker gets its own data
directory and ports, so a developer's running broker and a test run never collide.

    python deploy/local/kafka.py fetch
    python deploy/local/kafka.py start --home .local/kafka --port 19092
    python deploy/local/kafka.py stop --home .local/kafka
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "4.4.0"
CACHE_ROOT = Path(os.environ.get("OUTBOUND_CACHE", Path.home() / ".cache" / "recipe-outbound"))
LIBS = CACHE_ROOT / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch() -> Path:
    """Resolve the broker jars once; later calls only check the marker file."""
    marker = LIBS / ".complete"
    if marker.exists():
        return LIBS
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise SystemExit("kafka: Java 17 and Maven are needed to fetch and run the local broker")
    staging = LIBS.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    shutil.rmtree(LIBS, ignore_errors=True)
    staging.rename(LIBS)
    marker.touch()
    return LIBS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Broker:
    """A broker's home directory (config, data, log, pid file) and its listener ports."""

    home: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                # Source topics come from the topic catalog; a typo must not create a topic.
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.segment.bytes=16777216",
                "",
            ]
        )


def running_pid(broker: Broker) -> int | None:
    try:
        pid = int(broker.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def new_cluster_id() -> str:
    """A random cluster id, as Kafka's own `Uuid.randomUuid` makes them: never starting with "-",
    which the storage tool's argument parser would read as an option (one id in 64 did)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def start(broker: Broker, timeout: float = 120.0) -> Broker:
    """Format storage on first use, start the broker and return once it answers a metadata request."""
    if running_pid(broker) is not None:
        wait_ready(broker.bootstrap, timeout)
        return broker
    libs = fetch()
    broker.home.mkdir(parents=True, exist_ok=True)
    config = broker.home / "server.properties"
    config.write_text(broker.properties())
    java = [
        "java",
        "-Xms128m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-cp",
        f"{libs}/*",
    ]
    if not (broker.home / "data" / "meta.properties").exists():
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "--cluster-id", new_cluster_id(), "-c", str(config)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with broker.log_file.open("ab") as log:
        proc = subprocess.Popen(
            [*java, "kafka.Kafka", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(broker.bootstrap, timeout, proc)
    except BaseException:
        stop(broker)
        raise
    return broker


def wait_ready(bootstrap: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    from service.kafka_admin import broker_answers
    from service.settings import Settings

    probe = Settings(broker=f"kafka://{bootstrap}")
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"kafka: broker exited with code {proc.returncode}; see its log")
        if asyncio.run(broker_answers(probe, 1.0)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"kafka: broker at {bootstrap} did not answer within {timeout:.0f}s")


def stop(broker: Broker, timeout: float = 30.0) -> None:
    pid = running_pid(broker)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    broker.pid_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker jars into the cache")
    for name in ("start", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--home", type=Path, required=True, help="config, data and log directory")
        p.add_argument("--port", type=int, default=19092)
        p.add_argument("--controller-port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(fetch())
        return 0
    broker = Broker(args.home.resolve(), args.port or free_port(), args.controller_port or free_port())
    if args.command == "start":
        started = time.monotonic()
        start(broker)
        print(f"kafka {KAFKA_VERSION} ready at {broker.bootstrap} in {time.monotonic() - started:.1f}s")
    else:
        stop(broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())

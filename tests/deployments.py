"""Deployments of the service on the session's broker and `outbound` processes: the CLI, workers, and
integrations put through them."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from cryptography.fernet import Fernet

from service.kafka_admin import end_offsets, read_topic
from tests.events import unique
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


OUTBOUND = str(Path(sys.executable).parent / "outbound")


def load_local_kafka() -> Any:
    spec = importlib.util.spec_from_file_location("local_kafka", ROOT / "deploy" / "local" / "kafka.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_kafka"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Deployment:
    """One isolated instance of the service on the shared broker: its own topic prefix and app id."""

    bootstrap: str
    prefix: str
    workdir: Path
    secret_key: str
    api_token: str = "test-token"
    extra_env: dict[str, str] = field(default_factory=dict)

    def topic(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUND_")}
        env.update(
            OUTBOUND_BROKER=f"kafka://{self.bootstrap}",
            OUTBOUND_TOPIC_PREFIX=self.prefix,
            OUTBOUND_APP_ID=f"{self.prefix}app",
            OUTBOUND_SECRET_KEYS=self.secret_key,
            OUTBOUND_API_TOKEN=self.api_token,
            OUTBOUND_LOCAL_DELIVERY_ROOT=str(self.workdir / "deliveries"),
            OUTBOUND_BROKER_WAIT_SECONDS="20",
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([OUTBOUND, *args], env=self.env(**env), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"outbound {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    async def produce(
        self,
        key: str,
        items: list[tuple[bytes | None, bytes | None]],
        partition_of: Callable[[bytes], int] | None = None,
    ) -> None:
        """Produce as a Java client would (murmur2), or to the partition `partition_of(key)` chooses."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    self.topic(key), key=k, value=v, partition=partition_of(k) if partition_of and k else None
                )
                for k, v in items
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def produce_json(
        self, key: str, docs: list[dict[str, Any]], id_field: str, partition_of: Callable[[bytes], int] | None = None
    ) -> None:
        await self.produce(key, [(str(d[id_field]).encode(), orjson.dumps(d)) for d in docs], partition_of)

    async def read(self, key: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Everything on the topic right now, from the beginning of every partition."""
        return await read_topic({"bootstrap_servers": self.bootstrap}, self.topic(key))

    async def committed_everything(self, key: str) -> bool:
        """True when the service's consumer group has committed every message of the topic."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(f"{self.prefix}app")
        finally:
            await admin.close()
        ends = await end_offsets({"bootstrap_servers": self.bootstrap}, self.topic(key))
        last = {tp.partition: n for tp, n in ends.items()}
        done = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic(key)}
        return all(done.get(p, 0) >= end for p, end in last.items())

    async def read_json(
        self, key: str, where: Callable[[dict[str, Any]], bool] = lambda d: True
    ) -> list[dict[str, Any]]:
        return [d for d in (orjson.loads(r.value) for r in await self.read(key) if r.value is not None) if where(d)]

    async def wait_json(
        self, key: str, where: Callable[[dict[str, Any]], bool], count: int, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` matching messages are on the topic; then check no more than that arrived."""

        async def enough() -> list[dict[str, Any]] | None:
            found = await self.read_json(key, where)
            return found if len(found) >= count else None

        found = await wait_for(enough, timeout, f"{count} matching messages on {key}")
        assert len(found) == count, f"expected {count} messages on {key}, found {len(found)}"
        return found


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


class Worker:
    """`outbound worker` as a real process, with its log in the deployment's work directory."""

    def __init__(self, deployment: Deployment, name: str, port: int | None = None, **env: str) -> None:
        self.deployment = deployment
        self.name = name
        self.port = port or load_local_kafka().free_port()
        self.log = deployment.workdir / f"{name}.log"
        self.env = deployment.env(
            OUTBOUND_WEB_PORT=str(self.port),
            OUTBOUND_DATA_DIR=str(deployment.workdir / f"{name}-data"),
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([OUTBOUND, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def ready(self, timeout: float = 120.0) -> Worker:
        async def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient() as client:
                    r = await client.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=2)
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(answers, timeout, f"worker {self.name} to be ready")
        return self

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.deployment.api_token}"},
            timeout=10,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def answers_ready(workers: list[Worker]) -> bool:
    """True when every one of the workers answers its readiness probe with 200 (no wait)."""
    async with httpx.AsyncClient() as client:
        for worker in workers:
            try:
                if (await client.get(f"http://127.0.0.1:{worker.port}/health/ready", timeout=2)).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


def put_integration(deployment: Deployment, doc: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    path = deployment.workdir / f"integration-{doc['id']}.json"
    path.write_bytes(orjson.dumps(doc))
    return deployment.cli("integrations", "put", str(path), check=False, **env)


async def worker_knows(worker: Worker, integration_id: str, timeout: float = 60.0) -> dict[str, Any]:
    async def known() -> dict[str, Any] | None:
        async with worker.api() as api:
            r = await api.get("/v1/integrations")
        return next((i for i in r.json()["integrations"] if i["id"] == integration_id), None)

    return await wait_for(known, timeout, f"worker {worker.name} to know integration {integration_id}")


async def configure(deployment: Deployment, workers: list[Worker], doc: dict[str, Any]) -> None:
    """Publish an integration and wait until every worker routes with it."""
    result = put_integration(deployment, doc)
    assert result.returncode == 0, result.stderr
    for w in workers:
        await worker_knows(w, doc["id"])

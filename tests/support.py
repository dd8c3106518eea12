"""Helpers shared by the tests: local servers, producing and reading topics, waiting on conditions."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord

from service.kafka_admin import end_offsets, read_topic
from tests.files import good_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "schemas" / "examples"
OUTBOUND = str(Path(sys.executable).parent / "outbound")


def load_local_kafka() -> Any:
    spec = importlib.util.spec_from_file_location("local_kafka", ROOT / "deploy" / "local" / "kafka.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_kafka"] = module
    spec.loader.exec_module(module)
    return module


def example(name: str) -> dict[str, Any]:
    return orjson.loads((EXAMPLES / name).read_bytes())


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def wait_for(
    condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.1
) -> Any:
    """Poll `condition` (sync or async) every `every` seconds until it returns something truthy, or fail
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_for_progress(
    measure: Callable[[], Any], target: int, stall: float, what: str, every: float = 1.0, timeout: float = 3600.0
) -> int:
    """Poll the count `measure` returns (sync or async) until it reaches `target`; fail as soon as it has
    not grown for `stall` seconds (something is stuck or gone, waiting longer will not bring it), or
    after `timeout` in all, saying how far it got."""
    started = grew = time.monotonic()
    best = -1
    while True:
        count = measure()
        if asyncio.iscoroutine(count):
            count = await count
        now = time.monotonic()
        if count >= target:
            return int(count)
        if count > best:
            best, grew = count, now
        if now - grew > stall or now - started > timeout:
            why = f"nothing new for {stall:.0f}s" if now - grew > stall else f"timed out after {timeout:.0f}s"
            raise AssertionError(f"{why} waiting for {what}: {count} of {target}")
        await asyncio.sleep(every)


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


def local_integration(tenant: str, events: list[str], **fields: Any) -> dict[str, Any]:
    return integration(tenant, "local", {"directory": tenant}, events, **fields)


def recipe_event(tenant: str, recipe_id: str | None = None, **fields: Any) -> dict[str, Any]:
    doc = example("recipe-created.json")
    doc.update(tenant=tenant, recipeId=recipe_id or unique("r-"), eventId=str(uuid.uuid4()), **fields)
    return doc


def order_event(tenant: str, recipe_ids: list[str], event_type: str = "order.created", **fields: Any) -> dict[str, Any]:
    doc = example("order-created.json")
    doc.update(
        type=event_type,
        tenant=tenant,
        orderId=fields.pop("orderId", unique("o")),
        orderNumber=fields.pop("orderNumber", unique("n")),
        eventId=str(uuid.uuid4()),
        lineItems=[{"itemId": f"item-{i}", "recipeId": r, "itemQuantity": 1} for i, r in enumerate(recipe_ids)],
        **fields,
    )
    return doc


def recipe_with_assets(destinations, tenant, **fields):
    """A recipe whose five files live on the test asset host, and the bytes each should arrive with:
    good files of their types (they pass the pre-flight checks), different on every call."""
    recipe = recipe_event(tenant, **fields)
    contents = {}
    for file in recipe["files"]:
        data = good_file(file["type"], os.urandom(32) + file["name"].encode())
        asset = f"{uuid.uuid4().hex}.{file['type']}"
        file["url"] = destinations.http.add_asset(asset, data)
        contents[(file["name"], file["type"])] = data
    return recipe, contents


def hook_integration(destinations, tenant, events=("order.created",), **fields):
    """A catch-hook integration posting to the test hook named after the tenant."""
    fields = {
        "description": "Production hook",
        "successNotificationList": f"ok-{tenant}@ops.example",
        "failureNotificationList": f"alerts-{tenant}@ops.example",
        **fields,
    }
    return integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, events, **fields)


def keys_in_one_partition(count: int, partitions: int = 6, prefix: str = "o") -> list[str]:
    """Keys that the service's producer (murmur2, as every Kafka Java client) puts in one partition."""
    target = None
    keys: list[str] = []
    while len(keys) < count:
        key = unique(prefix)
        partition = murmur2_partition(key.encode(), partitions)
        target = partition if target is None else target
        if partition == target:
            keys.append(key)
    return keys


def crc32_partition(partitions: int = 6) -> Callable[[bytes], int]:
    """librdkafka's default (`consistent_random`): CRC32 of the key, as confluent-kafka, Go and Node
    producers place messages unless told otherwise."""
    return lambda key: zlib.crc32(key) % partitions


def murmur2_partition(key: bytes, partitions: int = 6) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def integration(tenant, type_, settings, events=("order.created",), **fields):
    return {
        "id": unique(f"{tenant}-{type_}-"),
        "tenant": tenant,
        "type": type_,
        "enabled": True,
        "events": list(events),
        "settings": settings,
        **fields,
    }


def sftp_settings(destinations, directory):
    """Settings for the session's SFTP server, or for the SftpServer given instead."""
    sftp = getattr(destinations, "sftp", destinations)
    return {
        "host": "127.0.0.1",
        "port": sftp.port,
        "username": sftp.username,
        "password-secure": sftp.password,
        "host-key": sftp.host_key,
        "directory": directory,
    }


def s3_settings(destinations, bucket, **extra):
    return {
        "bucket": bucket,
        "access-key-secret": "test",
        "secret-key-secret": "test",
        "endpoint-url": destinations.s3_endpoint,
        **extra,
    }


def s3_client(destinations):
    session = aioboto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    return session.client("s3", endpoint_url=destinations.s3_endpoint)


async def make_bucket(destinations, bucket):
    async with s3_client(destinations) as s3:
        await s3.create_bucket(Bucket=bucket)


def malformed(kind: str, doc: dict, i: int) -> tuple[bytes | None, bytes]:
    """Ten ways for an upstream producer to get it wrong."""
    key_field = "recipeId" if kind == "recipe" else "orderId"
    key = str(doc[key_field]).encode()
    variant = i % 10
    if variant == 0:
        return key, b"{ this is not json"
    if variant == 1:
        return key, b"\xff\xfe" + orjson.dumps(doc)
    if variant == 2:
        return key, orjson.dumps({**doc, "type": f"{kind}.exploded"})
    if variant == 3:
        return b"another-key", orjson.dumps(doc)
    if variant == 4:
        return key, orjson.dumps({k: v for k, v in doc.items() if k != "tenant"})
    if variant == 5:
        return key, orjson.dumps({**doc, "padding": "x" * 300_000})
    if variant == 6:
        return key, orjson.dumps([doc])
    if variant == 7:
        return None, orjson.dumps(doc)
    if variant == 8:
        return key, orjson.dumps({**doc, "occurredAt": "yesterday"})
    return key, orjson.dumps({**doc, "eventId": 42})


def of_tenant(tenant: str) -> Callable[[dict[str, Any]], bool]:
    """Selects a tenant's messages (delivery commands and results carry `tenant`)."""
    return lambda d: d["tenant"] == tenant


@dataclass(frozen=True)
class FakeMessage:
    """A consumed message as the acknowledging code sees it (unit tests of acks, no broker)."""

    tp: str
    offset: int
    generation_id: int = 1
    topic: str = "tenant-activity"
    partition: int = 0


@dataclass
class FakeEvent:
    """A Faust event whose acknowledgements are recorded in `acked`, in the order they happen."""

    message: FakeMessage
    acked: list[tuple[str, int]] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append((self.message.tp, self.message.offset))


def fake_events(tp: str, offsets: range, acked: list[tuple[str, int]]) -> list[FakeEvent]:
    return [FakeEvent(FakeMessage(tp, o), acked) for o in offsets]

"""A worker with a wiped data directory rebuilds a table from its changelog in bulk
(service/bulk_recovery.py): every key ends with the changelog's latest value, deleted keys are gone,
and each partition's stored offset is its changelog's last. Then, with the data directory kept, only
what was written since is read, deletions included."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from rocksdict import AccessType, Options, Rdict

from service.bulk_recovery import OFFSET_KEY
from service.catalog import changelog_name
from service.kafka_admin import end_offsets
from tests.deployments import Deployment, Worker, new_deployment
from tests.events import recipe_event, unique

pytestmark = pytest.mark.integration

PARTITIONS = 6
Changelog = list[tuple[int, bytes, bytes | None]]


def partition_of(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


async def write(deployment: Deployment, topic: str, records: Changelog, transaction: bool = False) -> None:
    """In a transaction, each partition's log ends in a commit marker: its last offset holds no record."""
    producer = AIOKafkaProducer(
        bootstrap_servers=deployment.bootstrap, linger_ms=10, transactional_id=unique("tx-") if transaction else None
    )
    await producer.start()
    try:
        if transaction:
            await producer.begin_transaction()
        futures = [await producer.send(topic, key=k, value=v, partition=p) for p, k, v in records]
        for future in futures:
            await future
        if transaction:
            await producer.commit_transaction()
    finally:
        await producer.stop()


def latest(records: Changelog) -> dict[int, dict[bytes, bytes]]:
    """Per partition, what the table must hold: each key's last value, deleted keys absent."""
    state: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTITIONS)}
    for partition, key, value in records:
        if value is None:
            state[partition].pop(key, None)
        else:
            state[partition][key] = value
    return state


def stored(data_dir: Path) -> tuple[dict[int, dict[bytes, bytes]], dict[int, int]]:
    """What the stopped worker's recipes table holds per partition, and each partition's stored offset."""
    state: dict[int, dict[bytes, bytes]] = {}
    offsets: dict[int, int] = {}
    paths = sorted(data_dir.rglob("recipes-*.db"))
    assert len(paths) == PARTITIONS, f"expected {PARTITIONS} partitions of the recipes table, found {paths}"
    for path in paths:
        partition = int(path.name.removesuffix(".db").rsplit("-", 1)[1])
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            items = dict(db.items())
        finally:
            db.close()
        offsets[partition] = int(items.pop(OFFSET_KEY))
        state[partition] = items
    return state, offsets


async def last_offsets(deployment: Deployment, topic: str) -> dict[int, int]:
    ends = await end_offsets({"bootstrap_servers": deployment.bootstrap}, topic)
    return {tp.partition: end - 1 for tp, end in ends.items()}


def restores(worker: Worker) -> list[int]:
    """The records each bulk restore in the worker's log applied (its log spans its starts)."""
    lines = [orjson.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    return [line["records"] for line in lines if line["message"] == "table partitions restored in bulk"]


def recipe(tenant: str, key: bytes) -> bytes:
    return orjson.dumps(recipe_event(tenant, recipe_id=orjson.loads(key)))


async def test_a_wiped_worker_restores_the_table_in_bulk_and_a_kept_one_reads_only_the_rest(kafka):
    deployment = new_deployment(kafka)
    topic = changelog_name(f"{deployment.prefix}app", "recipes")
    tenant = unique("bulk")
    rng = random.Random(7)
    keys = [orjson.dumps(unique("r-")) for _ in range(3000)]
    history: Changelog = [(partition_of(k), k, recipe(tenant, k)) for k in keys]
    overwritten = rng.sample(keys, 300)
    deleted = rng.sample(sorted(set(keys) - set(overwritten)), 200)
    back_again = deleted[:20]  # deleted, then written again: the last write wins
    history += [(partition_of(k), k, recipe(tenant, k)) for k in overwritten]
    history += [(partition_of(k), k, None) for k in deleted]
    history += [(partition_of(k), k, recipe(tenant, k)) for k in back_again]
    await write(deployment, topic, history)

    worker = Worker(deployment, "restored")
    data_dir = deployment.workdir / "restored-data"
    await worker.start().ready()
    worker.stop()
    state, offsets = stored(data_dir)
    assert state == latest(history)
    assert not any(k in state[partition_of(k)] for k in deleted[20:])
    assert offsets == await last_offsets(deployment, topic)
    assert restores(worker) == [len(history)]

    # Kept: only the records written while it was stopped are read, and their deletions applied. They
    # come in a transaction: the stored offsets must pass the commit markers (aiokafka's position does),
    # or Faust's recovery would wait for a record at the last offset, which never comes.
    more = [(partition_of(k), k, None) for k in rng.sample(sorted(latest(history)[0]), 10)]
    more += [(partition_of(k), k, recipe(tenant, k)) for k in (orjson.dumps(unique("r-")) for _ in range(50))]
    before = await last_offsets(deployment, topic)
    await write(deployment, topic, more, transaction=True)
    after = await last_offsets(deployment, topic)
    written = Counter(p for p, _, _ in more)
    assert all(after[p] == before[p] + written[p] + 1 for p in written), "each log ends in a marker"
    await worker.start().ready()
    worker.stop()
    state, offsets = stored(data_dir)
    assert state == latest(history + more)
    assert offsets == await last_offsets(deployment, topic)
    assert restores(worker) == [len(history), len(more)]

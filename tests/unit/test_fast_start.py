"""What a worker's start no longer waits for, each pinned against the library it works around."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.tables.manager import TableManager as FaustTableManager

from service.faust_fixes import ActiveOnlyConsumerThread, TableManager


class FakeClient:
    """An aiokafka consumer reduced to what a seek to the committed offsets touches."""

    def __init__(self, assigned: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        self.requests: list[set[TopicPartition]] = []
        self.sought: dict[TopicPartition, int] = {}
        self._subscription = SimpleNamespace(assigned_partitions=lambda: set(assigned))
        self._fetcher = SimpleNamespace(seek_to=self.sought.__setitem__)

        async def fetch_committed_offsets(partitions: Any) -> dict[TopicPartition, OffsetAndMetadata]:
            self.requests.append(set(partitions))
            return {tp: OffsetAndMetadata(committed[tp], "") for tp in partitions if tp in committed}

        self._coordinator = SimpleNamespace(fetch_committed_offsets=fetch_committed_offsets)


async def test_one_request_seeks_every_partition_where_aiokafka_would():
    tps = [TopicPartition("orders", p) for p in range(6)]
    client = FakeClient(set(tps), {tps[0]: 7, tps[1]: 0, tps[2]: -1, tps[3]: 120})
    thread = SimpleNamespace(_ensure_consumer=lambda: client)

    committed = await ActiveOnlyConsumerThread._seek_to_committed_at_once(thread)  # type: ignore[arg-type]

    assert client.requests == [set(tps)]
    assert committed == {tps[0]: 7, tps[1]: 0, tps[2]: None, tps[3]: 120, tps[4]: None, tps[5]: None}
    assert client.sought == {tps[0]: 7, tps[3]: 120}  # offset 0 and none at all: left where they are


async def test_aiokafka_itself_asks_once_per_partition():
    source = inspect.getsource(AIOKafkaConsumer.seek_to_committed)
    assert "for tp in partitions:" in source and "await self.committed(tp)" in source


def test_faust_waits_a_second_before_it_starts_the_tables_and_the_service_does_not():
    assert "await self.sleep(1.0)" in inspect.getsource(FaustTableManager.on_start)
    assert "sleep" not in inspect.getsource(TableManager.on_start)


def test_every_table_is_declared_before_the_worker_starts():
    """The premise of skipping Faust's second: importing what the worker imports declares every table."""
    from service.app import app, catalog
    from service.worker import register_everything

    register_everything()

    tables = {key.removeprefix("table:") for key in catalog.topics if key.startswith("table:")}
    assert tables and set(app.tables) == tables


def test_the_worker_starts_without_the_sftp_azure_and_s3_client_libraries():
    modules = "asyncssh", "azure.storage.blob", "azure.core", "aioboto3"
    code = (
        "import sys\n"
        "from service.worker import register_everything\n"
        "register_everything()\n"
        f"print([m for m in {modules!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""Kafka outside the stream: connection options, a reachability check and the topic catalog's apply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from service.catalog import Catalog, TopicPlan, plan_topics
from service.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured broker and its security settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


async def broker_answers(settings: Settings, timeout: float) -> bool:
    """True once the cluster answers a metadata request naming at least one live broker."""
    # A refused connection is the expected answer while waiting; aiokafka would log each one. Only while
    # waiting: the worker needs aiokafka's own warnings (a failed heartbeat, a refused join) afterwards.
    with _quiet(logging.getLogger("aiokafka")):
        return await _wait_for_broker(settings, timeout)


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _wait_for_broker(settings: Settings, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        client = AIOKafkaClient(**client_options(settings), request_timeout_ms=3000)
        try:
            await client.bootstrap()
            if client.cluster.brokers():
                return True
        except (KafkaError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.close()
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.3)


async def describe_existing(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, dict[str, str]]]:
    present = [n for n in names if n in set(await admin.list_topics())]
    if not present:
        return {}
    partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(present)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            _error, _msg, _type, name, entries = resource[:5]
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return {name: (partitions[name], configs.get(name, {})) for name in present}


async def apply_topics(settings: Settings, catalog: Catalog) -> TopicPlan:
    """Create the catalog's missing topics; report (never change) topics that differ. While a partition
    count differs nothing is created (service/catalog.py, plan_topics)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        plan = plan_topics(catalog, await describe_existing(admin, [t.name for t in catalog]))
        if plan.create:
            await admin.create_topics(
                [NewTopic(t.name, t.partitions, t.replication, topic_configs=t.configs) for t in plan.create]
            )
        return plan
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # partitions_for_topic() only knows topics the consumer subscribed to; ask the cluster instead.
    metadata = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(metadata.partitions_for_topic(topic) or [])]


async def end_offsets(options: dict[str, Any], topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await topic_partitions(consumer, topic)))
    finally:
        await consumer.stop()


async def read_topic(options: dict[str, Any], topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on `topic` now, from the start of every partition (no consumer group, no commits)."""
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(*partitions, timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()

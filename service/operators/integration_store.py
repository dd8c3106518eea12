"""Reading and writing the compacted integrations topic (and the tokens' one) from outside the stream
(the CLI and the API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from service.catalog import Catalog
from service.contracts import Integration
from service.kafka_admin import client_options, read_topic
from service.planning.health import report_record
from service.secrets import SecretBox
from service.settings import Settings
from service.validation import INTEGRATION, Rejected, integration_reasons, parse_event


class IntegrationRefused(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def check_new_integration(raw: bytes, settings: Settings) -> Integration:
    """Validate a configuration as an integration engineer wrote it (secrets still in plain text)."""
    doc = orjson.loads(raw) if raw.strip().startswith(b"{") else None
    key = str(doc.get("id", "")).encode() if isinstance(doc, dict) else b""
    config = parse_event(INTEGRATION, key, raw, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes)
    if isinstance(config, Rejected):
        raise IntegrationRefused(config.reasons)
    assert isinstance(config, Integration)
    reasons = integration_reasons(config, stored=False, allow_http_hooks=settings.allow_http_hooks)
    if reasons:
        raise IntegrationRefused(reasons)
    return config


def sealed(config: Integration, box: SecretBox) -> bytes:
    """The bytes published to the topic: secrets encrypted."""
    doc = config.model_dump(mode="json")
    if doc.get("deliverWithinMinutes") is None:
        del doc["deliverWithinMinutes"]  # unset stays unset: older workers' schema knows no such field
    doc["settings"] = box.encrypt_settings(config.settings)
    return orjson.dumps(doc)


async def publish_integration(settings: Settings, catalog: Catalog, key: str, value: bytes | None) -> None:
    """A configuration published enabled starts its count of failures over (planning/health.py): a new
    hook URL, new credentials or an operator's Enable is a new chance for the receiver."""
    records: list[tuple[str, str, bytes | None]] = [("integrations", key, value)]
    if value is not None and orjson.loads(value).get("enabled") is True:
        records.append(("integration-health", key, orjson.dumps(report_record("enabled", datetime.now(UTC)))))
    await publish_records(settings, catalog, records)


async def publish_compacted(settings: Settings, catalog: Catalog, topic: str, key: str, value: bytes | None) -> None:
    """One record (None: a tombstone) on a compacted topic of the catalog, acknowledged by all replicas."""
    await publish_records(settings, catalog, [(topic, key, value)])


async def publish_records(settings: Settings, catalog: Catalog, records: list[tuple[str, str, bytes | None]]) -> None:
    """(catalog topic, key, value) records, in order, each acknowledged by all replicas before the next."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(catalog[topic].name, key=key.encode(), value=value)
    finally:
        await producer.stop()


async def read_integrations(settings: Settings, catalog: Catalog) -> dict[str, dict[str, Any]]:
    return await read_compacted(settings, catalog, "integrations")


async def read_compacted(settings: Settings, catalog: Catalog, topic: str) -> dict[str, dict[str, Any]]:
    """A compacted topic's current state: every key's latest JSON value, tombstones applied."""
    state: dict[str, dict[str, Any]] = {}
    for record in await read_topic(client_options(settings), catalog[topic].name):
        key = record.key.decode("utf-8", "replace") if record.key else ""
        if record.value is None:
            state.pop(key, None)
            continue
        try:
            state[key] = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
    return state

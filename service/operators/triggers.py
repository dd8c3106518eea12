"""Publishing manual triggers from the CLI (the API publishes through the worker's own producer)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from service.catalog import Catalog
from service.contracts import TriggerMode
from service.kafka_admin import broker_answers, client_options
from service.settings import Settings
from service.validation import TRIGGER, Rejected, parse_event


class TriggerRefused(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def trigger_document(
    tenant: str,
    recipe_id: str | None,
    order_id: str | None,
    order_number: str | None,
    integration_id: str | None,
    requested_by: str,
    now: datetime,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "triggerId": str(uuid.uuid4()),
        "requestedAt": now.isoformat().replace("+00:00", "Z"),
        "tenant": tenant,
        "recipeId": recipe_id,
        "orderId": order_id,
        "orderNumber": order_number,
        "integrationId": integration_id,
        "requestedBy": requested_by or None,
    }
    return {k: v for k, v in doc.items() if v is not None}


async def publish_trigger(settings: Settings, catalog: Catalog, doc: dict[str, Any], mode: TriggerMode) -> str:
    """Validate a trigger document (`trigger_document`) in `mode` with the same contract the worker
    applies, then publish; returns the triggerId."""
    doc = {**doc, "mode": mode}
    raw = orjson.dumps(doc)
    key = str(doc.get(TRIGGER.key_field(doc), "")).encode()
    checked = parse_event(TRIGGER, key, raw, schemas_dir=settings.schemas_dir, max_bytes=settings.max_event_bytes)
    if isinstance(checked, Rejected):
        raise TriggerRefused(checked.reasons)
    if not await broker_answers(settings, settings.broker_wait_seconds):
        raise TriggerRefused([f"the Kafka broker at {settings.bootstrap_servers()} did not answer"])
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(catalog["triggers"].name, key=key, value=raw)
    finally:
        await producer.stop()
    return str(doc["triggerId"])

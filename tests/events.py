"""Input events as upstream producers send them (from the schemas' examples), unique names, and the
ways a producer gets them wrong."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.files import good_file

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def example(name: str) -> dict[str, Any]:
    return orjson.loads((EXAMPLES / name).read_bytes())


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


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


def delivery_command(**fields: Any) -> Any:
    """A delivery command of one order line's ticket, as the join makes it; `fields` replace its own."""
    from service.contracts import DeliveryCommand

    doc: dict[str, Any] = {
        "deliveryId": "d1",
        "integrationId": "acme-local",
        "integrationType": "local",
        "tenant": "acme",
        "eventType": "order.created",
        "eventId": "e1",
        "recipeId": "r1",
        "orderId": "o1",
        "orderNumber": "1022",
        "files": [{"kind": "ticket", "name": "1022_Ticket.pdf", "mimeType": "application/pdf", "url": "https://a/t"}],
        "createdAt": "2026-12-02T00:00:00+00:00",
    }
    return DeliveryCommand.model_validate({**doc, **fields})


def one_file_recipe(tenant: str, url: str) -> dict[str, Any]:
    """A recipe of one production file (a DST) at `url`."""
    recipe = recipe_event(tenant)
    recipe["files"] = [
        {"kind": "production", "name": "Front", "type": "dst", "mimeType": "application/octet-stream", "url": url}
    ]
    return recipe


def big_file_recipe(destinations: Any, tenant: str, size: int) -> dict[str, Any]:
    """A recipe of one production file of `size` bytes, a valid DST streamed by the test asset host (it
    passes pre-flight)."""
    return one_file_recipe(tenant, f"{destinations.http.base}/big/{size}?as=dst")

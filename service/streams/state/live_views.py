"""The live views every worker keeps: integration configurations and the order-number index."""

from __future__ import annotations

import orjson

from service.app import app, catalog, settings
from service.contracts import Integration
from service.streams.state.topic_views import TopicView
from service.validation import Rejected, parse_stored_integration


def stored_integration(key: bytes | None, value: bytes | None) -> Integration | Rejected:
    return parse_stored_integration(
        key,
        value,
        schemas_dir=settings.schemas_dir,
        max_bytes=settings.max_event_bytes,
        allow_http_hooks=settings.allow_http_hooks,
    )


def _integration(key: bytes, value: bytes) -> Integration | None:
    """Refused configurations are left out here and reported once, by the ingest agent."""
    config = stored_integration(key, value)
    return config if isinstance(config, Integration) else None


def _order_id(key: bytes, value: bytes) -> str | None:
    try:
        return str(orjson.loads(value)["orderId"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


integrations_view: TopicView[Integration] = TopicView(catalog["integrations"].name, _integration, "integrations")
order_numbers_view: TopicView[str] = TopicView(catalog["order-index"].name, _order_id, "order index")


@app.start_task
async def follow_integrations() -> None:
    await integrations_view.run(settings)


@app.start_task
async def follow_order_index() -> None:
    await order_numbers_view.run(settings)


async def all_integrations() -> list[Integration]:
    await integrations_view.wait_caught_up()
    return integrations_view.values()


async def find_integration(integration_id: str) -> Integration | None:
    await integrations_view.wait_caught_up()
    return integrations_view.get(integration_id)


async def order_views_ready() -> None:
    await order_numbers_view.wait_caught_up()

"""The live views every worker keeps: integration configurations, the order-number index and the
operator API's tenant tokens (their hashes)."""

from __future__ import annotations

import orjson

from service.app import app, catalog, settings
from service.contracts import Integration
from service.planning.access import IssuedToken, parse_issued
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


def _issued_token(key: bytes, value: bytes) -> IssuedToken | None:
    """A malformed record grants nothing: it is left out, as a revoked one is."""
    try:
        return parse_issued(orjson.loads(value))
    except orjson.JSONDecodeError:
        return None


integrations_view: TopicView[Integration] = TopicView(catalog["integrations"].name, _integration, "integrations")
order_numbers_view: TopicView[str] = TopicView(catalog["order-index"].name, _order_id, "order index")
tokens_view: TopicView[IssuedToken] = TopicView(catalog["api-tokens"].name, _issued_token, "api tokens")


@app.start_task
async def follow_integrations() -> None:
    await integrations_view.run(settings)


@app.start_task
async def follow_order_index() -> None:
    await order_numbers_view.run(settings)


@app.start_task
async def follow_tokens() -> None:
    await tokens_view.run(settings)


async def all_integrations() -> list[Integration]:
    await integrations_view.wait_caught_up()
    return integrations_view.values()


_promising: list[tuple[int, list[Integration]]] = [(-1, [])]


async def integrations_promising_a_time() -> list[Integration]:
    """The integrations with `deliverWithinMinutes`, derived again only when the view changed: the
    orders stage asks for every order, and most deployments have few or none of them among many."""
    await integrations_view.wait_caught_up()
    version, found = _promising[0]
    if version != integrations_view.version:
        found = [i for i in integrations_view.items.values() if i.deliverWithinMinutes is not None]
        _promising[0] = (integrations_view.version, found)
    return found


async def find_integration(integration_id: str) -> Integration | None:
    await integrations_view.wait_caught_up()
    return integrations_view.get(integration_id)


async def latest_integration(integration_id: str) -> Integration | None:
    """The integration as last published, not as this worker last read it (a fetch behind at most)."""
    await integrations_view.wait_latest()
    return integrations_view.get(integration_id)


async def order_views_ready() -> None:
    await order_numbers_view.wait_caught_up()

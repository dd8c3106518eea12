"""Any worker answers any look-up: a request for a key another worker owns goes to that owner.

One hop, marked so that it is never forwarded again. The owner is found as Faust's router finds it,
from the partition the key's bytes hash to, so every table read through here is keyed by the raw
bytes of the message key its rows were written under.
"""

from __future__ import annotations

import logging
from typing import Any

from faust import web
from yarl import URL

from service.app import app, catalog
from service.operators.auth import Handler
from service.operators.request_checks import Refused
from service.planning.placement import service_partition

log = logging.getLogger(__name__)

FORWARDED = "X-Outbound-Forwarded"
ANSWERED_BY = "X-Outbound-Answered-By"


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


def owner_of(changelog_topic: str, key: str) -> URL | None:
    """The worker that owns `key`'s partition of a table (None: this one).

    The partition is computed as every producer here computes it (murmur2 of the key's bytes), from
    the partition count in the catalog: the producer may not know a changelog it never wrote to."""
    partition = service_partition(key.encode(), catalog_partitions(changelog_topic))
    for url, topics in app.assignor.table_metadata(changelog_topic).items():
        if partition in topics.get(changelog_topic, ()):
            owner = URL(str(url))
            return None if _ident(owner) == _ident(URL(str(app.conf.canonical_url))) else owner
    raise Refused(503, "the workers are sharing out partitions; try again in a moment")


def catalog_partitions(changelog_topic: str) -> int:
    return next(spec.partitions for spec in catalog if spec.name == changelog_topic)


def changelog(table: Any) -> str:
    return str(table.changelog_topic.get_topic_name())


async def on_owner(view: web.View, request: web.Request, table: Any, key: str, local: Handler) -> web.Response:
    """Answer here if this worker owns `key` in `table`, else forward the request to the owner."""
    owner = owner_of(changelog(table), key)
    if owner is None:
        response = await local()
        # Which worker answered: for whoever debugs routing (and the tests that prove it).
        response.headers[ANSWERED_BY] = str(app.conf.canonical_url)
        return response
    if request.headers.get(FORWARDED):
        raise Refused(503, "the partition moved while the request was forwarded; try again")
    return await forward(view, request, owner.with_path(request.url.path).with_query(request.url.query))


async def forward(view: web.View, request: web.Request, url: URL) -> web.Response:
    headers = {FORWARDED: "1"}
    for name in ("Authorization", "Content-Type"):
        if name in request.headers:
            headers[name] = request.headers[name]
    body = await request.read() if request.method == "POST" else None
    try:
        async with app.http_client.request(request.method, url, headers=headers, data=body) as response:
            kept = {name: response.headers[name] for name in ("Location", ANSWERED_BY) if name in response.headers}
            return view.bytes(
                await response.read(),
                content_type=response.content_type or "application/json",
                status=response.status,
                headers=kept,
            )
    except OSError as exc:
        log.warning("forwarding to the owning worker failed", extra={"to": str(url.origin()), "error": str(exc)})
        raise Refused(503, "the worker that holds this key did not answer; try again") from exc


async def ask_owner(request: web.Request, url: URL) -> Any:
    """A JSON answer from another worker's API, with the caller's credentials."""
    headers = {FORWARDED: "1", "Authorization": request.headers.get("Authorization", "")}
    try:
        async with app.http_client.get(url, headers=headers) as response:
            if response.status != 200:
                raise Refused(503, f"the worker at {url.origin()} answered {response.status}; try again")
            return await response.json()
    except OSError as exc:
        raise Refused(503, f"the worker at {url.origin()} did not answer; try again") from exc

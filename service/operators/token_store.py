"""Issuing, listing and revoking tenant tokens on the compacted api-tokens topic (the CLI).

The token itself exists only in the answer of `issue`: the topic, and so every worker, holds its
SHA-256. Revoking publishes the id's tombstone, which every worker's tokens view applies as it reads.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import orjson

from service.catalog import Catalog
from service.operators.integration_store import publish_compacted, read_compacted
from service.planning.access import IssuedToken, Scope, parse_issued, token_hash
from service.settings import Settings

TOPIC = "api-tokens"


def new_token(tenant: str, scope: Scope, note: str, now: datetime) -> tuple[str, IssuedToken]:
    """A random 256-bit token and its record (the token is never part of the record)."""
    token = secrets.token_urlsafe(32)
    record = IssuedToken(
        id=f"tok-{secrets.token_hex(6)}",
        tenant=tenant,
        scope=scope,
        sha256=token_hash(token),
        note=note,
        issuedAt=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    )
    return token, record


async def issue(settings: Settings, catalog: Catalog, tenant: str, scope: Scope, note: str) -> tuple[str, IssuedToken]:
    token, record = new_token(tenant, scope, note, datetime.now(UTC))
    await publish_compacted(settings, catalog, TOPIC, record.id, orjson.dumps(record.as_dict()))
    return token, record


async def issued(settings: Settings, catalog: Catalog) -> list[IssuedToken]:
    """Every token not revoked, oldest first."""
    found = [parse_issued(doc) for doc in (await read_compacted(settings, catalog, TOPIC)).values()]
    return sorted((r for r in found if r is not None), key=lambda r: (r.issuedAt, r.id))


async def revoke(settings: Settings, catalog: Catalog, token_id: str) -> bool:
    """False when no such token is issued (nothing published)."""
    if token_id not in {r.id for r in await issued(settings, catalog)}:
        return False
    await publish_compacted(settings, catalog, TOPIC, token_id, None)
    return True

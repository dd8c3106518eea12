"""Who a bearer token is, and what it may see: the operator API's access decisions (pure).

Two global tokens (settings) see every tenant. Tenant tokens are issued per tenant; only the
SHA-256 of each travels (on the api-tokens topic), so a worker, a log or a dump of the topic never
holds one. A tenant token sees its own tenant only, and everything else is, to it, absent: the API
answers it exactly as for something that does not exist, so a token cannot learn another tenant's
ids exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from service.planning.view_answers import view_tenant
from service.planning.view_keys import Kind

Scope = Literal["read", "operate"]
SCOPES: tuple[Scope, ...] = ("read", "operate")


@dataclass(frozen=True)
class Access:
    """What a request's token grants: its scope, and its tenant (None: every tenant)."""

    scope: Scope
    tenant: str | None = None
    token_id: str | None = None

    def sees(self, tenant: object) -> bool:
        return self.tenant is None or tenant == self.tenant

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, **({"tenant": self.tenant} if self.tenant is not None else {})}


EVERY_TENANT_OPERATE = Access("operate")
EVERY_TENANT_READ = Access("read")


@dataclass(frozen=True)
class IssuedToken:
    """One tenant token as stored on the topic: never the token, only its hash."""

    id: str
    tenant: str
    scope: Scope
    sha256: str
    note: str
    issuedAt: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_issued(doc: object) -> IssuedToken | None:
    """A stored token record, or None for anything malformed (it grants nothing)."""
    if not isinstance(doc, dict):
        return None
    fields = ("id", "tenant", "scope", "sha256")
    if not all(isinstance(doc.get(f), str) and doc.get(f) for f in fields) or doc["scope"] not in SCOPES:
        return None
    if len(doc["sha256"]) != 64:
        return None
    return IssuedToken(
        doc["id"],
        doc["tenant"],
        doc["scope"],
        doc["sha256"],
        str(doc.get("note") or ""),
        str(doc.get("issuedAt") or ""),
    )


def access_of(given: str, operate: str, read: str, issued: Iterable[IssuedToken]) -> Access | None:
    """The access `given` grants, or None. Every comparison runs, each in constant time (hashes of
    equal length), so timing tells nothing about which token, if any, nearly matched."""
    digest = token_hash(given).encode()
    is_operate = hmac.compare_digest(digest, token_hash(operate).encode()) and bool(operate)
    is_read = hmac.compare_digest(digest, token_hash(read).encode()) and bool(read)
    found: IssuedToken | None = None
    for record in issued:
        if hmac.compare_digest(digest, record.sha256.encode()):
            found = record
    if is_operate:
        return EVERY_TENANT_OPERATE
    if is_read:
        return EVERY_TENANT_READ
    if found is not None:
        return Access(found.scope, found.tenant, found.id)
    return None


def visible_tenant(access: Access, asked: str | None) -> str | None:
    """The tenant a filter (replay, re-drive, integrations list) is held to: a tenant token's own,
    whatever was asked; a global token's, what was asked (None: every tenant)."""
    return access.tenant if access.tenant is not None else asked


def visible_view(access: Access, doc: dict[str, Any] | None, kind: Kind, key: str) -> dict[str, Any] | None:
    """An order's or recipe's view document as the token may see it: another tenant's is absent."""
    if access.tenant is None:
        return doc
    return doc if view_tenant(doc, kind, key) == access.tenant else None

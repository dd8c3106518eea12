"""What the operator API refuses, and the checks of what a request holds (body, query, names).

Every route answers a Refused as `{"error": "…"}` with its status, so a check may raise it from
anywhere below a route's handler.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from faust import web

TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Refused(Exception):
    """A request the API answers with an error: status and what is wrong, as JSON."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def refusal(view: web.View, status: int, error: str) -> web.Response:
    return view.json({"error": error}, status=status)


def json_object(raw: bytes, allowed: set[str], *, empty: bytes = b"{}") -> dict[str, Any]:
    """A POST body as a JSON object naming only `allowed` fields, or Refused (400); `empty` stands
    for a body with no bytes."""
    try:
        body = orjson.loads(raw or empty)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"the body is not JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Refused(400, f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


def checked_tenant(tenant: str) -> str:
    if not TENANT.match(tenant):
        raise Refused(400, f"{tenant!r} is not a tenant name (lower-case letters, digits and dashes)")
    return tenant


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(400, f"query parameter {name} must be a whole number from {low} to {high}")
    return int(raw)


def bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise Refused(400, f"query parameter {name} must be true or false")
    return raw in ("true", "1")

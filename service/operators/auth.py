"""The operator API's bearer tokens and their two scopes.

Read (`OUTBOUND_API_READ_TOKEN`) may look things up; operate (`OUTBOUND_API_TOKEN`) may also
trigger, replay and re-drive. With neither configured the API answers 503 rather than run open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Literal

from faust import web

from service.app import settings
from service.operators.request_checks import Refused, refusal

Scope = Literal["read", "operate"]
Handler = Callable[[], Awaitable[web.Response]]


def scope_of(request: web.Request) -> Scope:
    """The scope the request's bearer token grants; raises Refused (401) for no or a wrong token."""
    operate = settings.api_token.get_secret_value()
    read = settings.api_read_token.get_secret_value()
    if not operate and not read:
        raise Refused(503, "the operator API is disabled: set OUTBOUND_API_TOKEN and/or OUTBOUND_API_READ_TOKEN")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise Refused(401, "missing bearer token (Authorization: Bearer <token>)")
    given = header[7:].strip().encode()
    # Both comparisons always run, in constant time, so timing tells nothing about either token.
    is_operate = hmac.compare_digest(given, operate.encode()) and bool(operate)
    is_read = hmac.compare_digest(given, read.encode()) and bool(read)
    if is_operate:
        return "operate"
    if is_read:
        return "read"
    raise Refused(401, "the bearer token is not valid")


def require(request: web.Request, needed: Scope) -> Scope:
    scope = scope_of(request)
    if needed == "operate" and scope != "operate":
        raise Refused(403, "this token may only look things up; triggering needs the operate token")
    return scope


async def with_scope(view: web.View, request: web.Request, needed: Scope, handle: Handler) -> web.Response:
    """`handle`'s answer when the token grants `needed`; any Refused on the way as its JSON error."""
    try:
        require(request, needed)
        return await handle()
    except Refused as exc:
        return refusal(view, exc.status, exc.error)

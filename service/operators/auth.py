"""The operator API's bearer tokens, their two scopes and their tenants.

Read (`OUTBOUND_API_READ_TOKEN`) may look things up; operate (`OUTBOUND_API_TOKEN`) may also
trigger, replay and re-drive; both see every tenant. Tenant tokens (`outbound tokens issue`) have
one of the two scopes and see one tenant (service.planning.access). With no token configured or
issued the API answers 503 rather than run open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faust import web

from service.app import settings
from service.operators.request_checks import Refused, refusal
from service.planning.access import Access, Scope, access_of
from service.streams.state.live_views import tokens_view

Handler = Callable[[], Awaitable[web.Response]]


def access(request: web.Request) -> Access:
    """What the request's bearer token grants; raises Refused (401) for no or a wrong token. Cheap
    enough (hashes) to work out again wherever a route needs it."""
    operate = settings.api_token.get_secret_value()
    read = settings.api_read_token.get_secret_value()
    issued = tokens_view.values()
    if not operate and not read and not issued:
        raise Refused(503, "the operator API is disabled: set OUTBOUND_API_TOKEN and/or OUTBOUND_API_READ_TOKEN")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise Refused(401, "missing bearer token (Authorization: Bearer <token>)")
    granted = access_of(header[7:].strip(), operate, read, issued)
    if granted is None:
        raise Refused(401, "the bearer token is not valid")
    return granted


def require(request: web.Request, needed: Scope) -> Access:
    granted = access(request)
    if needed == "operate" and granted.scope != "operate":
        raise Refused(403, "this token may only look things up; triggering needs the operate token")
    return granted


async def with_scope(view: web.View, request: web.Request, needed: Scope, handle: Handler) -> web.Response:
    """`handle`'s answer when the token grants `needed`; any Refused on the way as its JSON error."""
    try:
        require(request, needed)
        return await handle()
    except Refused as exc:
        return refusal(view, exc.status, exc.error)

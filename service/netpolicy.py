"""Which network destinations the service may connect to.

Private, loopback, link-local and other non-public addresses are refused unless the operator's
local-testing setting allows them: a tenant's configuration must not reach inside the cluster.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError


class RefusedDestination(PermanentDeliveryError):
    """A destination the policy forbids; retrying cannot help."""


class UnresolvedHost(TransientDeliveryError):
    """A name that does not resolve now: DNS trouble passes, so it is worth another attempt."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


async def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """Resolve `host` and refuse it if any of its addresses is not public (unless allowed)."""
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnresolvedHost(f"host {host!r} does not resolve: {exc.strerror}") from exc
    for info in infos:
        address = str(info[4][0])
        if not is_public(address):
            raise RefusedDestination(f"host {host!r} resolves to non-public address {address}")


def url_host_port(url: str) -> tuple[str, int]:
    """The URL's host and port, or a permanent refusal when they cannot be valid (no attempt can fix
    `https://cdn:99999/` or `https://a..b/`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination(f"not an http(s) URL: {url[:200]!r}")
    try:
        port = parts.port
        parts.hostname.encode("idna")
    except ValueError as exc:  # UnicodeError included: IDNA refuses empty or overlong labels
        raise RefusedDestination(f"not a valid URL: {url[:200]!r} ({exc})") from exc
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def host_key(url: str) -> str:
    """`host` or `host:port` (when the port is explicit), lower-case, as asset hosts are configured."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


async def check_url(url: str, *, allow_private: bool, allowed_hosts: frozenset[str] | None = None) -> None:
    host, port = url_host_port(url)
    if allowed_hosts is not None and host_key(url) not in allowed_hosts and host.lower() not in allowed_hosts:
        raise RefusedDestination(f"host {host_key(url)!r} is not a configured asset host")
    await check_host(host, port, allow_private=allow_private)

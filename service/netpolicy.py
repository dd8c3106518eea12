"""Which network destinations the service may connect to, enforced where each connection is made.

Integrations are written on a customer's word, so every host in them is untrusted input reaching from
inside the cluster. A name is resolved once, every address it resolves to is judged, and the
connection goes to one of exactly those addresses: a second lookup by the client library (a DNS
rebinding window) never happens. The clients plug this in at their lowest layer (`connectors.py`):
httpx through its network backend, aiohttp (S3, Azure) through its connector and resolver, SFTP by
connecting to the checked address. Answers are kept for their TTL (`CachedLookup`), never the verdict:
every address is judged again each time it is used.

Non-public addresses are refused unless the operator allows them, with two separate switches: the
operator's own asset hosts may be private (an in-cluster file server), tenant destinations may not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.secrets import redact_url


class RefusedDestination(PermanentDeliveryError):
    """A destination the policy forbids; retrying cannot help."""


class UnresolvedHost(TransientDeliveryError):
    """A name that does not resolve now: DNS trouble passes, so it is worth another attempt."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Listed on purpose rather than left to `is_global` alone: Python's idea of "global" changes between
# patch releases, and these are the classes a tenant's host must never reach.
_NON_PUBLIC_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
_NON_PUBLIC_V6 = [
    ipaddress.IPv6Network(n)
    for n in ("::/128", "::1/128", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")
]
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo), or
    None when it embeds none: such an address reaches whatever its IPv4 reaches."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return [server, client]
    return None


def is_public(address: str | IPAddress) -> bool:
    """Whether a connection to this address leaves the cluster for the public internet."""
    ip = address if not isinstance(address, str) else ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False  # a network's own translator: its IPv4 side is wherever that network says
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return all(is_public(v4) for v4 in embedded)
        return ip.is_global and not any(ip in net for net in _NON_PUBLIC_V6)
    return ip.is_global and not any(ip in net for net in _NON_PUBLIC_V4)


Lookup = Callable[[str, int], Awaitable[list[str]]]

# How long an answer is kept when the resolver does not say (getaddrinfo never does): short, so that a
# moved host is followed within seconds; aiohttp kept its answers as long before this cache replaced it.
DEFAULT_TTL_SECONDS = 10.0
MAX_CACHED_NAMES = 1024


async def system_lookup(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class ScriptedLookup:
    """Test-only DNS answers (OUTBOUND_TESTING_DNS): `{"name": [[first answer...], [second...]]}`, the
    last answer repeating; other names go to the system resolver. Harmless in production: like a hosts
    file it only says where a name points, and every answer still goes through the policy."""

    answers: dict[str, list[list[str]]]
    asked: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: how long a scripted answer may be kept: none by default, as a rebinding name answers (TTL 0)
    ttl: float = 0.0

    def ttl_for(self, host: str) -> float | None:
        return self.ttl if host.lower() in self.answers else None

    async def __call__(self, host: str, port: int) -> list[str]:
        script = self.answers.get(host.lower())
        if not script:
            return await system_lookup(host, port)
        turn = min(self.asked[host.lower()], len(script) - 1)
        self.asked[host.lower()] += 1
        return list(script[turn])


@dataclass
class _Cached:
    addresses: tuple[str, ...]
    expires: float


class CachedLookup:
    """Another lookup's answers, kept for their TTL (the inner lookup's `ttl_for(host)`, when it has
    one and knows; else DEFAULT_TTL_SECONDS), and one question at a time per name: every file of a
    delivery and every new connection asked the resolver again, in a thread of the executor.

    Only what a name resolves to is kept, never a verdict: each policy judges every answer on every
    use, cached or not, so one cache can serve the asset hosts' policy and the destinations' policy.
    Failures are not kept: a name that does not resolve is asked again by the next attempt."""

    def __init__(
        self,
        inner: Lookup,
        *,
        default_ttl: float = DEFAULT_TTL_SECONDS,
        max_names: int = MAX_CACHED_NAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.default_ttl = default_ttl
        self.max_names = max_names
        self.clock = clock
        self.answers: dict[tuple[str, int], _Cached] = {}
        self.asking: dict[tuple[str, int], asyncio.Future[list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        key = (host.lower(), port)
        cached = self.answers.get(key)
        if cached is not None and cached.expires > self.clock():
            return list(cached.addresses)
        asking = self.asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(key, host, port))
            self.asking[key] = asking
            asking.add_done_callback(lambda done: self._asked(key, done))
        # Shielded: one caller giving up (its attempt cancelled) does not fail the others' question.
        return list(await asyncio.shield(asking))

    def _asked(self, key: tuple[str, int], done: asyncio.Future[list[str]]) -> None:
        if self.asking.get(key) is done:
            del self.asking[key]
        if not done.cancelled():
            done.exception()  # seen here, so a question whose every caller gave up is not logged as lost

    async def _ask(self, key: tuple[str, int], host: str, port: int) -> list[str]:
        found = await self.inner(host, port)
        ttl_for = getattr(self.inner, "ttl_for", None)
        ttl = ttl_for(host) if ttl_for is not None else None
        ttl = self.default_ttl if ttl is None else ttl
        if found and ttl > 0:
            self.answers.pop(key, None)
            self.answers[key] = _Cached(tuple(found), self.clock() + ttl)
            while len(self.answers) > self.max_names:
                del self.answers[next(iter(self.answers))]  # the oldest answer
        return found


def lookup_from_environment() -> Lookup:
    """The worker's one resolver (shared by its policies): the system's, or the test script's."""
    scripted = os.environ.get("OUTBOUND_TESTING_DNS", "").strip()
    if not scripted:
        return CachedLookup(system_lookup)
    return CachedLookup(ScriptedLookup({name.lower(): answers for name, answers in json.loads(scripted).items()}))


@dataclass(frozen=True)
class NetPolicy:
    """Where one kind of connection may go: tenant destinations, or the operator's asset hosts."""

    allow_private: bool
    lookup: Lookup = system_lookup
    what: str = "host"

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, every one of them judged: refused when any is not
        public (unless allowed), so a name cannot mix a public answer with an internal one."""
        host = host.strip("[]")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            found = [host]
        else:
            try:
                found = await self.lookup(host, port)
            except (socket.gaierror, UnicodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise UnresolvedHost(f"{self.what} {host[:100]!r} does not resolve: {reason}") from exc
            if not found:
                raise UnresolvedHost(f"{self.what} {host[:100]!r} does not resolve")
        if not self.allow_private:
            for address in found:
                if not is_public(address):
                    shown = "" if literal is not None else f" resolves to {address}, which"
                    raise RefusedDestination(f"{self.what} {host[:100]!r}{shown} is not a public address")
        return found


def url_host_port(url: str) -> tuple[str, int]:
    """The URL's host and port, or a permanent refusal when they cannot be valid (no attempt can fix
    `https://cdn:99999/` or `https://a..b/`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination(f"not an http(s) URL: {redact_url(url)}")
    try:
        port = parts.port
        parts.hostname.encode("idna")
    except ValueError as exc:  # UnicodeError included: IDNA refuses empty or overlong labels
        raise RefusedDestination(f"not a valid URL: {redact_url(url)} ({type(exc).__name__})") from exc
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def host_key(url: str) -> str:
    """`host` or `host:port` (when the port is explicit), lower-case, as asset hosts are configured."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


async def check_url(url: str, policy: NetPolicy, *, allowed_hosts: frozenset[str] | None = None) -> None:
    """Fail early, with a clear reason, for a URL no connection may be made to. (The connection itself
    is checked again where it is made: this answer is not what it connects to.)"""
    host, port = url_host_port(url)
    if allowed_hosts is not None and host_key(url) not in allowed_hosts and host.lower() not in allowed_hosts:
        raise RefusedDestination(f"host {host_key(url)!r} is not a configured asset host")
    await policy.addresses(host, port)


async def check_host(host: str, port: int, policy: NetPolicy) -> None:
    await policy.addresses(host, port)

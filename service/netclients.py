"""The network policy plugged into each client library at the layer where it opens connections.

- httpx (catch hooks): a network backend that resolves through the policy and
  connects to a checked address; httpcore still sends the URL's host as Host and TLS SNI, so
  certificates are verified against the name.
- aiohttp (asset downloads; S3 through aiobotocore, Azure through azure-core): a connector whose resolver applies the
  policy, and which judges IP literals too (aiohttp does not ask its resolver about those).
- SFTP connects to an address from `NetPolicy.addresses` itself.

No client follows redirects: a redirect's target was never checked, and 307/308 would resend the body.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import aiohttp
import httpcore
import httpx
from aiobotocore.httpsession import AIOHTTPSession
from aiohttp.abc import AbstractResolver, ResolveResult

from service.netpolicy import NetPolicy, RefusedDestination
from service.secrets import redact_url

REDIRECTS = (301, 302, 303, 307, 308)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: NetPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.policy.addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses() never answers an empty list
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedDestination("unix sockets are not destinations")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PolicyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the policy's network backend. Proxies from the environment are not used:
    they would connect somewhere the policy never judged."""

    def __init__(
        self, policy: NetPolicy, *, limits: httpx.Limits, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no parameter for the backend; its pool is rebuilt with the same settings plus it
        # (tests/security prove connections go through it, so a library change cannot drop it unseen).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PolicyNetworkBackend(policy, inner),
        )


def policy_http_client(policy: NetPolicy, *, timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=PolicyTransport(policy, limits=limits), timeout=timeout, follow_redirects=False, trust_env=False
    )


class PolicyResolver(AbstractResolver):
    def __init__(self, policy: NetPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in await self.policy.addresses(host, port)
        ]

    async def close(self) -> None:
        pass


class PolicyConnector(aiohttp.TCPConnector):
    def __init__(self, policy: NetPolicy, **kwargs: Any) -> None:
        kwargs.pop("resolver", None)
        # aiohttp's own cache would keep every answer 10 s whatever its TTL; the policy's lookup keeps
        # them (netpolicy.CachedLookup) as long as they may be kept, and each is judged on every use.
        kwargs.pop("use_dns_cache", None)
        super().__init__(resolver=PolicyResolver(policy), family=socket.AF_UNSPEC, use_dns_cache=False, **kwargs)
        self.policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        # aiohttp answers IP literals itself without asking the resolver: judge those here (names are
        # judged by the resolver, once).
        if is_ip_literal(host):
            await self.policy.addresses(host, port)
        return await super()._resolve_host(host, port, traces=traces)


async def refuse_redirects(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
    """aiohttp follows redirects unless each call says not to (aiobotocore does not): refuse them here,
    before the next hop is requested."""
    response: aiohttp.ClientResponse = await handler(request)
    if response.status in REDIRECTS and response.headers.get("Location"):
        response.release()
        raise RefusedDestination(
            f"{redact_url(str(request.url))} answered a redirect (HTTP {response.status}), which is not followed"
        )
    return response


def policy_aiohttp_session(
    policy: NetPolicy,
    *,
    timeout: aiohttp.ClientTimeout | None = None,
    every_call_refuses_redirects: bool = False,
    **connector: Any,
) -> aiohttp.ClientSession:
    """`every_call_refuses_redirects`: the owner passes `allow_redirects=False` on every request and
    answers a 3xx itself; otherwise the session refuses redirects for callers that cannot say so."""
    return aiohttp.ClientSession(
        connector=PolicyConnector(policy, **connector),
        middlewares=() if every_call_refuses_redirects else (refuse_redirects,),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        timeout=timeout or aiohttp.client.DEFAULT_TIMEOUT,
    )


class PolicyBotoSession(AIOHTTPSession):
    """aiobotocore's HTTP session on the policy connector (given through `connector_args["resolver"]`,
    the one way aiobotocore passes an object through to its connector)."""

    def _create_connector(self, proxy_url: str | None) -> aiohttp.TCPConnector:
        args = dict(self._connector_args)
        resolver = args.pop("resolver")
        assert isinstance(resolver, PolicyResolver), "S3 clients are made with a PolicyResolver"
        context: ssl.SSLContext | bool = self._get_ssl_context() if self._verify else False
        if isinstance(context, ssl.SSLContext) and isinstance(self._verify, str):
            context.load_verify_locations(self._verify)
        return PolicyConnector(resolver.policy, limit=self._max_pool_connections, ssl=context, **args)

    async def _get_session(self, proxy_url: str | None) -> aiohttp.ClientSession:
        if not (session := self._sessions.get(proxy_url)):
            session = aiohttp.ClientSession(
                connector=self._create_connector(proxy_url),
                timeout=self._timeout,
                skip_auto_headers={"CONTENT-TYPE"},
                auto_decompress=False,
                middlewares=(refuse_redirects,),
            )
            self._sessions[proxy_url] = await self._exit_stack.enter_async_context(session)
        return session

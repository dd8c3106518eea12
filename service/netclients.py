"""The network policy plugged into each client library at the layer where it opens connections.

- aiohttp (asset downloads, catch hooks; S3 through aiobotocore, Azure through azure-core): a
  connector whose resolver applies the policy, and which judges IP literals too (aiohttp does not
  ask its resolver about those). aiohttp connects to the checked address and still sends the URL's
  host as Host and TLS SNI, so certificates are verified against the name.
- SFTP connects to an address from `NetPolicy.addresses` itself.

No client follows redirects: a redirect's target was never checked, and 307/308 would resend the body.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any

import aiohttp
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

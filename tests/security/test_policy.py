"""S1, the fast part: the address policy over every non-public class, and each client library connecting
only where the policy said (in-process, against a real loopback listener that records connections)."""

from __future__ import annotations

import httpcore
import httpx
import pytest

from service.delivery_errors import PermanentDeliveryError
from service.destinations.failures import classify_failure
from service.netclients import PolicyNetworkBackend, PolicyTransport, policy_aiohttp_session, policy_http_client
from service.netpolicy import NetPolicy, RefusedDestination, ScriptedLookup, check_url, is_public
from service.settings import Settings
from tests.security.loopback import PUBLIC, Recorder

NON_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.254",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.0.9",
    "169.254.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.1",
    "192.0.0.9",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.7",
    "203.0.113.7",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",  # local-use NAT64: its IPv4 side is the network's own
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",
    "2002:c0a8:101::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
    "2001:0:a9fe:a9fe::1",  # Teredo, server 169.254.169.254
]
PUBLIC_ADDRESSES = [
    "93.184.215.14",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: server 65.54.227.120, client 8.8.8.8
]


@pytest.mark.parametrize("address", NON_PUBLIC)
async def test_every_non_public_class_is_refused(address: str) -> None:
    assert not is_public(address)
    with pytest.raises(RefusedDestination, match="not a public address"):
        await NetPolicy(allow_private=False).addresses(address, 443)
    # The operator's switch allows them (local testing).
    assert await NetPolicy(allow_private=True).addresses(address, 443) == [address]


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0177.0.0.1", "0x7f.0.0.1", "[::1]", "LOCALHOST"])
async def test_other_spellings_of_loopback_are_refused(host: str) -> None:
    """Legacy numeric forms are not IP literals to Python but the system resolver maps them: judged too."""
    with pytest.raises(RefusedDestination, match="not a public address"):
        await NetPolicy(allow_private=False).addresses(host, 443)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)


async def test_a_name_is_refused_when_any_of_its_answers_is_not_public() -> None:
    lookup = ScriptedLookup({"mixed.test": [[PUBLIC, "10.0.0.1"]], "loop.test": [["127.0.0.1"]]})
    policy = NetPolicy(allow_private=False, lookup=lookup)
    with pytest.raises(RefusedDestination, match=r"resolves to 10\.0\.0\.1"):
        await policy.addresses("mixed.test", 443)
    with pytest.raises(RefusedDestination, match=r"resolves to (127\.0\.0\.1|::1)"):
        await check_url("https://loop.test/hook", policy)
    with pytest.raises(RefusedDestination, match=r"resolves to (127\.0\.0\.1|::1)"):
        await policy.addresses("localhost", 443)  # the system resolver's answer, judged the same way


async def test_the_backend_connects_to_the_address_it_checked_and_resolves_once() -> None:
    """The rebinding window: the name's second answer (loopback) is never asked for."""
    lookup = ScriptedLookup({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    inner = RecordingBackend()
    backend = PolicyNetworkBackend(NetPolicy(allow_private=False, lookup=lookup), inner)
    await backend.connect_tcp("rebind.test", 443)
    assert inner.connected == [(PUBLIC, 443)] and lookup.asked["rebind.test"] == 1
    with pytest.raises(RefusedDestination):
        await backend.connect_tcp("rebind.test", 443)  # a new connection asks again, and is judged again
    assert inner.connected == [(PUBLIC, 443)]


async def test_httpx_keeps_host_and_sni_while_connecting_to_the_checked_address() -> None:
    lookup = ScriptedLookup({"hooks.test": [[PUBLIC]]})
    inner = RecordingBackend()
    transport = PolicyTransport(NetPolicy(allow_private=False, lookup=lookup), limits=httpx.Limits(), inner=inner)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://hooks.test/catch")
    assert response.status_code == 200
    assert inner.connected == [(PUBLIC, 443)]
    assert inner.server_names == ["hooks.test"]  # TLS SNI, so the certificate is checked against the name
    assert b"Host: hooks.test" in inner.sent


async def test_httpx_never_reaches_loopback(recorder: Recorder) -> None:
    lookup = ScriptedLookup({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    policy = NetPolicy(allow_private=False, lookup=lookup)
    await check_url(f"http://rebind.test:{recorder.port}/", policy)  # the first answer: public
    async with policy_http_client(policy, timeout=httpx.Timeout(5), limits=httpx.Limits()) as client:
        for url in (
            f"http://127.0.0.1:{recorder.port}/",
            f"http://localhost:{recorder.port}/",
            f"http://[::1]:{recorder.port}/",
            f"http://[::ffff:127.0.0.1]:{recorder.port}/",
            f"http://rebind.test:{recorder.port}/",  # the second answer: loopback
        ):
            with pytest.raises(RefusedDestination):
                await client.get(url)
    assert recorder.connections == []


async def test_aiohttp_never_reaches_loopback_literal_or_resolved(recorder: Recorder) -> None:
    lookup = ScriptedLookup({"rebind.test": [["127.0.0.1"]]})
    async with policy_aiohttp_session(NetPolicy(allow_private=False, lookup=lookup)) as session:
        for url in (
            f"http://127.0.0.1:{recorder.port}/",
            f"http://localhost:{recorder.port}/",
            f"http://[::ffff:7f00:1]:{recorder.port}/",
            f"http://rebind.test:{recorder.port}/",
        ):
            with pytest.raises(RefusedDestination):
                await session.get(url)
    assert recorder.connections == []


async def test_aiohttp_refuses_redirects(destinations, recorder: Recorder) -> None:
    """A 307 would resend the body to wherever it points: refused before the next hop."""
    name = f"redirect-{recorder.port}"
    destinations.http.hook_statuses[name] = [
        (307, {"Location": f"http://127.0.0.1:{recorder.port}/latest/meta-data/"}, 0.0)
    ]
    async with policy_aiohttp_session(NetPolicy(allow_private=True)) as session:
        with pytest.raises(RefusedDestination, match="redirect"):
            await session.post(f"{destinations.http.base}/hook/{name}", data=b"body")
    assert recorder.connections == []


def test_a_wrapped_refusal_is_still_a_refusal() -> None:
    from botocore.exceptions import HTTPClientError

    refusal = RefusedDestination("host 'x' resolves to 127.0.0.1, which is not a public address")
    failure = classify_failure(HTTPClientError(error=refusal))
    assert failure.permanent and "127.0.0.1" in failure.message
    assert isinstance(refusal, PermanentDeliveryError)


def test_each_switch_allows_only_its_own_kind_and_is_announced() -> None:
    assets_only = Settings(allow_private_asset_hosts=True)
    assert not assets_only.allow_private_destinations
    assert [w.split(" ")[0] for w in assets_only.open_switches()] == ["OUTBOUND_ALLOW_PRIVATE_ASSET_HOSTS"]
    assert Settings().open_switches() == []
    assert len(Settings(allow_private_destinations=True, allow_http_hooks=True).open_switches()) == 2


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Where the policy's backend asked to connect; answers every request with an empty 200."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []
        self.sent = b""
        self.server_names: list[str | None] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected.append((host, port))
        backend = self

        class Stream(httpcore.AsyncMockStream):
            async def write(self, buffer: bytes, timeout: float | None = None) -> None:
                backend.sent += buffer

            async def start_tls(self, ssl_context, server_hostname=None, timeout=None):
                backend.server_names.append(server_hostname)
                return self

        return Stream([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 0\r\n\r\n"])

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        pass

"""S1, the fast part: the address policy over every non-public class, and each client library connecting
only where the policy said (in-process, against a real loopback listener that records connections)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.delivery_errors import PermanentDeliveryError
from service.destinations.failures import classify_failure
from service.netclients import policy_aiohttp_session
from service.netpolicy import NetPolicy, RefusedDestination, ScriptedLookup, check_url, is_public
from service.settings import Settings
from tests.security.loopback import PUBLIC, Recorder
from tests.servers import free_port

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


async def test_aiohttp_connects_to_the_checked_address_and_keeps_host_and_sni(tmp_path) -> None:
    """A real TLS listener whose certificate names only hooks.test: the session reaches it through the
    policy's answer (no resolver knows the name), sends the name as Host, and verifies the certificate
    against the name (TLS SNI), not against the address it connected to."""
    certificate, key = self_signed("hooks.test")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    hosts: list[str] = []

    async def catch(request: web.Request) -> web.Response:
        hosts.append(request.host)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/catch", catch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=served).start()
    trusted = ssl.create_default_context(cadata=certificate.decode())
    lookup = ScriptedLookup({"hooks.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    try:
        async with policy_aiohttp_session(NetPolicy(allow_private=True, lookup=lookup), ssl=trusted) as session:
            async with session.post(f"https://hooks.test:{port}/catch", data=b"x") as answer:
                assert answer.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.post(f"https://other.test:{port}/catch", data=b"x")  # same address, other name
    finally:
        await runner.cleanup()
    assert hosts == [f"hooks.test:{port}"]


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


async def test_aiohttp_never_reaches_loopback_literal_or_resolved(recorder: Recorder) -> None:
    lookup = ScriptedLookup({"rebind.test": [["127.0.0.1"]]})
    async with policy_aiohttp_session(NetPolicy(allow_private=False, lookup=lookup)) as session:
        for url in (
            f"http://127.0.0.1:{recorder.port}/",
            f"http://localhost:{recorder.port}/",
            f"http://[::1]:{recorder.port}/",
            f"http://[::ffff:7f00:1]:{recorder.port}/",
            f"http://[::ffff:127.0.0.1]:{recorder.port}/",
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

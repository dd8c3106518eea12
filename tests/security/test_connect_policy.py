"""S1 through a worker under the production policy: asset URLs, hook URLs, SFTP hosts, S3 and Azure
endpoints pointing at a loopback listener (as an address, a name, an IPv4-mapped address and a name
whose second answer turns to loopback) are refused before a byte reaches it, the reason in the result;
a hook that redirects to the metadata address is not followed."""

from __future__ import annotations

import pytest

from tests.events import unique
from tests.integrations import RAW_FEED, integration
from tests.security.loopback import LOOPBACK_NAME, Recorder, rebinding
from tests.security.worker_inputs import command, first_results, publish_integrations, send_commands

pytestmark = pytest.mark.integration

# How each kind names the listener: a loopback literal, a name resolving to it, the same address
# IPv4-mapped, and the rebinding name.
HOSTS = ("127.0.0.1", "localhost", "::ffff:127.0.0.1", "rebind")


def host_for(kind: str, host: str) -> str:
    return rebinding(kind) if host == "rebind" else host


def in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def settings_for(kind: str, host: str, port: int, destinations) -> dict:
    url_host = in_url(host)
    if kind == "zapier":
        return {"hook-url": f"http://{url_host}:{port}/hook"}
    if kind == "sftp":
        sftp = destinations.sftp
        return {
            "host": host,
            "port": port,
            "username": "outbound",
            "password-secure": "never-sent",
            "host-key": sftp.host_key,
        }
    if kind == "s3":
        return {
            "bucket": "never",
            "access-key-secret": "AKIANEVERSENT",
            "secret-key-secret": "never-sent-secret",
            "endpoint-url": f"http://{url_host}:{port}",
        }
    return {
        "connection-string-secure": f"BlobEndpoint=http://{url_host}:{port}/acct;SharedAccessSignature=sv=2024&sig=never",
        "container": "never",
    }


async def test_every_destination_kind_is_refused_before_reaching_loopback(
    strict_deployment, strict_worker, destinations, recorder: Recorder
):
    tenant = unique("s1")
    configs = {
        (kind, host): integration(
            tenant, kind, settings_for(kind, host_for(kind, host), recorder.port, destinations), RAW_FEED
        )
        for kind in ("zapier", "sftp", "s3", "azure")
        for host in HOSTS
    }
    local = integration(tenant, "local", {"directory": tenant}, RAW_FEED)
    await publish_integrations(strict_deployment, [strict_worker], [*configs.values(), local])

    asset_hosts = ("127.0.0.1", "localhost", "::1", LOOPBACK_NAME, rebinding("asset"))
    assets = {
        host: command(
            local,
            [
                {
                    "kind": "production",
                    "name": f"{unique('x')}-Front.dst",
                    "mimeType": "application/octet-stream",
                    "url": f"http://{in_url(host)}:{recorder.port}/assets/front.dst",
                }
            ],
        )
        for host in asset_hosts
    }
    commands = {key: command(config) for key, config in configs.items()}
    await send_commands(strict_deployment, [*commands.values(), *assets.values()])
    results = await first_results(strict_deployment, [*commands.values(), *assets.values()])

    for key, sent in [*commands.items(), *assets.items()]:
        result = results[sent["deliveryId"]]
        assert result["outcome"] == "failed" and result["final"], (key, result)
        assert "not a public address" in result["error"], (key, result["error"])
    for host in ("localhost", LOOPBACK_NAME):
        assert "resolves to" in results[assets[host]["deliveryId"]]["error"]
    # The early check saw the rebinding name's public answer: the connection's own check refused it.
    rebound = [commands[(kind, "rebind")] for kind in ("zapier", "sftp", "s3", "azure")] + [assets[rebinding("asset")]]
    for sent in rebound:
        assert "resolves to 127.0.0.1" in results[sent["deliveryId"]]["error"], results[sent["deliveryId"]]
    assert recorder.connections == []


def test_each_open_switch_is_a_warning_at_start(worker, strict_worker):
    said = [line for line in worker.log.read_text().splitlines() if "network policy loosened" in line]
    assert len(said) == 3 and all('"level":"warning"' in line for line in said)
    strict = [line for line in strict_worker.log.read_text().splitlines() if "network policy loosened" in line]
    assert len(strict) == 1 and "OUTBOUND_ALLOW_HTTP_HOOKS" in strict[0]  # the only switch on there


async def test_a_redirect_to_the_metadata_address_is_not_followed(deployment, worker, destinations, recorder):
    """On the local-testing worker (private destinations allowed), so only the no-redirect rule stops it;
    the redirect points at the metadata address, and a second hook at the loopback listener."""
    tenant = unique("s1r")
    metadata, listener = f"{tenant}-md", f"{tenant}-lo"
    destinations.http.hook_statuses[metadata] = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, 0)]
    destinations.http.hook_statuses[listener] = [(307, {"Location": f"http://127.0.0.1:{recorder.port}/x"}, 0)]
    hooks = [
        integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{name}"}, RAW_FEED)
        for name in (metadata, listener)
    ]
    await publish_integrations(deployment, [worker], hooks)
    commands = [command(hook) for hook in hooks]
    await send_commands(deployment, commands)
    results = await first_results(deployment, commands)
    for sent in commands:
        result = results[sent["deliveryId"]]
        assert result["outcome"] == "failed" and result["final"]
        assert "redirect" in result["error"] and "not followed" in result["error"]
    assert len(destinations.http.hook_requests[metadata]) == 1  # asked once, never again
    assert recorder.connections == []

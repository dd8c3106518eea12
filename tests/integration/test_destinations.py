"""Deliveries reach real servers: SMTP, SFTP, S3 (moto), Azure Blob (Azurite), a catch hook, a folder."""

from __future__ import annotations

import base64
import uuid

import asyncssh
import orjson
import psutil
import pytest
from standardwebhooks.webhooks import Webhook

from tests.deployments import configure
from tests.events import big_file_recipe, one_file_recipe, order_event, recipe_with_assets, unique
from tests.files import big_prefix
from tests.integrations import azure_settings, integration, s3_settings, sftp_settings
from tests.stores import azure_blobs, make_bucket, s3_client, s3_objects
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SIGNING_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def order_name(order, recipe, name, ext):
    return f"{order['orderNumber']}_ID_{order['orderId']}_R_{recipe['recipeId']}_{name}.{ext}"


async def wait_results(deployment, delivery_filter, count, timeout=90):
    return await deployment.wait_json("delivery-results", delivery_filter, count, timeout)


async def test_one_order_reaches_all_six_destinations(deployment, worker, destinations):
    tenant = unique("six")
    bucket, container = f"b-{uuid.uuid4().hex[:12]}", f"c-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    sftp = destinations.sftp
    configs = [
        integration(tenant, "email", {"to": "workshop@factory.example", "subject-prefix": "[ACME]"}),
        integration(
            tenant,
            "sftp",
            sftp_settings(destinations, f"{tenant}/incoming"),
        ),
        integration(
            tenant,
            "s3",
            s3_settings(destinations, bucket, prefix="prod"),
        ),
        integration(tenant, "azure", await azure_settings(destinations, container)),
        integration(
            tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}", "signing-secret": SIGNING_SECRET}
        ),
        integration(tenant, "local", {"directory": tenant}),
    ]
    for config in configs:
        await configure(deployment, [worker], config)
    recipe, contents = recipe_with_assets(destinations, tenant)
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")

    results = await wait_results(deployment, lambda d: d["tenant"] == tenant, 6)
    assert {r["outcome"] for r in results} == {"delivered"}, results
    expected = {order_name(order, recipe, name, ext): data for (name, ext), data in contents.items()}
    manifest = order_name(order, recipe, "manifest", "json")

    # Local folder: every file, byte for byte, and a manifest that checks them.
    folder = deployment.workdir / "deliveries" / tenant
    assert {p.name for p in folder.iterdir()} == {*expected, manifest}
    for name, data in expected.items():
        assert (folder / name).read_bytes() == data
    listed = orjson.loads((folder / manifest).read_bytes())
    assert {f["name"]: f["size"] for f in listed["files"]} == {n: len(d) for n, d in expected.items()}

    # SFTP: same files in the configured directory, no temporary names left.
    remote = sftp.root / tenant / "incoming"
    assert {p.name for p in remote.iterdir()} == {*expected, manifest}
    assert all((remote / n).read_bytes() == d for n, d in expected.items())

    # S3: keys under the prefix, content types from the recipe.
    objects = await s3_objects(destinations, bucket)
    assert set(objects) == {f"prod/{n}" for n in [*expected, manifest]}
    assert objects[f"prod/{order_name(order, recipe, 'Ticket', 'pdf')}"] == (
        expected[order_name(order, recipe, "Ticket", "pdf")],
        "application/pdf",
    )

    # Azure: blobs under the prefix, content types set.
    blobs = await azure_blobs(destinations, container)
    assert set(blobs) == {f"orders/{n}" for n in [*expected, manifest]}
    assert blobs[f"orders/{order_name(order, recipe, 'Preview', 'png')}"][1] == "image/png"

    # E-mail: one message to `to`, subject with prefix, order number and recipe; files attached.
    [mail] = destinations.smtp.inbox.to("workshop@factory.example")
    assert mail["Subject"].startswith("[ACME]") and order["orderNumber"] in mail["Subject"]
    assert recipe["recipeId"] in mail["Subject"]
    attached = {part.get_filename(): part.get_payload(decode=True) for part in mail.walk() if part.get_filename()}
    assert {n: attached[n] for n in expected} == expected

    # Zapier: the seed's JSON with links, verified with an independent Standard Webhooks implementation.
    [(headers, body)] = destinations.http.hook_requests[tenant]
    Webhook(SIGNING_SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    payload = orjson.loads(body)
    assert payload["orderId"] == order["orderId"] and payload["orderNumber"] == order["orderNumber"]
    assert payload["eventType"] == "order.created"
    ticket = next(f for f in payload["files"] if f["name"] == order_name(order, recipe, "Ticket", "pdf"))
    assert ticket["mimeType"] == "application/pdf" and ticket["url"].startswith(destinations.http.base)
    webhook_ids = {r["deliveryId"] for r in results if r["integrationType"] == "zapier"}
    assert headers["webhook-id"] in webhook_ids


async def test_a_wrong_sftp_host_key_fails_the_delivery(deployment, worker, destinations):
    tenant = unique("hostkey")
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    sftp = destinations.sftp
    settings = {**sftp_settings(destinations, tenant), "host-key": other_key}
    await configure(deployment, [worker], integration(tenant, "sftp", settings))
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    [result] = await wait_results(deployment, lambda d: d["tenant"] == tenant, 1)
    assert result["outcome"] == "failed" and "host key" in result["error"] and result["final"]
    assert sftp.password not in result["error"]


async def test_a_failing_hook_is_a_failed_attempt(deployment, worker, destinations):
    tenant = unique("hook500")
    destinations.http.hook_statuses[tenant] = [500, 500, 500]
    await configure(
        deployment,
        [worker],
        integration(
            tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, events=["recipe.created"]
        ),
    )
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    results = await wait_results(deployment, lambda d: d["tenant"] == tenant, 3)
    assert [r["outcome"] for r in sorted(results, key=lambda r: r["attempt"])] == ["failed"] * 3
    assert all("HTTP 500" in r["error"] for r in results)
    payload = orjson.loads(destinations.http.hook_requests[tenant][0][1])
    assert payload["recipeId"] == recipe["recipeId"] and "orderId" not in payload


async def test_a_200_mb_file_goes_to_s3_and_sftp_with_bounded_memory(deployment, worker, destinations):
    tenant = unique("big")
    size = 200 * 1024 * 1024
    bucket = f"big-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    sftp = destinations.sftp
    for config in (
        integration(
            tenant,
            "s3",
            s3_settings(destinations, bucket),
        ),
        integration(
            tenant,
            "sftp",
            sftp_settings(destinations, tenant),
        ),
    ):
        await configure(deployment, [worker], config)
    recipe = big_file_recipe(destinations, tenant, size)
    process = psutil.Process(worker.proc.pid)
    baseline = process.memory_info().rss
    peak = baseline
    await deployment.produce_json("recipes", [recipe], "recipeId")
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("orders", [order], "orderId")

    async def done():
        nonlocal peak
        peak = max(peak, process.memory_info().rss)
        return len(await deployment.read_json("delivery-results", lambda d: d["tenant"] == tenant)) == 2

    await wait_for(done, 300, "both big deliveries")
    results = await deployment.read_json("delivery-results", lambda d: d["tenant"] == tenant)
    assert {r["outcome"] for r in results} == {"delivered"}, results
    name = order_name(order, recipe, "Front", "dst")
    remote = sftp.root / tenant / name
    assert remote.stat().st_size == size and remote.read_bytes()[: 1024 * 1024] == big_prefix("dst", size, 1024 * 1024)
    async with s3_client(destinations) as s3:
        head = await s3.head_object(Bucket=bucket, Key=name)
    assert head["ContentLength"] == size
    grown = peak - baseline
    print(f"worker RSS: baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, grew {grown / 2**20:.0f} MiB")
    assert grown < 120 * 1024 * 1024, f"worker grew by {grown / 2**20:.0f} MiB for a 200 MiB file"


async def test_files_from_unlisted_hosts_are_refused_before_any_connection(deployment, worker, destinations):
    tenant = unique("refused")
    await configure(
        deployment, [worker], integration(tenant, "local", {"directory": tenant}, events=["recipe.created"])
    )
    recipe = one_file_recipe(tenant, "https://assets.elsewhere.example/front.dst")
    await deployment.produce_json("recipes", [recipe], "recipeId")
    [result] = await wait_results(deployment, lambda d: d["tenant"] == tenant, 1)
    assert result["outcome"] == "failed" and result["final"]
    assert "not a configured asset host" in result["error"]

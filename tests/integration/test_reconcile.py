"""`outbound reconcile` against the real servers (a local folder, the SFTP server, moto, Azurite): a
deleted file and a changed one at each destination are found and sent again under the same names; a
second run finds nothing; a dry run sends nothing; a destination that refuses to answer is that
integration's error, and the others are still checked; the service's own leftovers are removed."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import orjson
import pytest
from azure.storage.blob.aio import BlobServiceClient

from tests.api_jobs import api, job_end, start_job
from tests.deployments import OUTBOUND, configure, put_integration
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import azure_settings, integration, local_integration, s3_settings, sftp_settings
from tests.servers import SilentServer
from tests.stores import account_connection, make_bucket, s3_client
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def cli(deployment, *args: str) -> tuple[int, str, str]:
    """`outbound ...` run without blocking this loop: the SFTP server and the asset host live in it, and
    reconcile talks to the SFTP server itself."""
    proc = await asyncio.create_subprocess_exec(
        OUTBOUND, *args, env=deployment.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def reconcile(deployment, tenant, *extra, check=True):
    code, out, err = await cli(deployment, "reconcile", "--tenant", tenant, "--since", "1h", "--json", *extra)
    assert code == 0 or not check, err
    return code, orjson.loads(out)


async def test_reconcile_finds_deleted_and_changed_files_at_each_destination_and_sends_them_again(
    deployment, worker, destinations
):
    tenant = unique("rec")
    bucket, container = f"rec-{uuid.uuid4().hex[:12]}", f"rec-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    events = ["recipe.created"]
    configs = {
        "local": local_integration(tenant, events),
        "sftp": integration(tenant, "sftp", sftp_settings(destinations, f"{tenant}/in"), events),
        "s3": integration(tenant, "s3", s3_settings(destinations, bucket, prefix="p"), events),
        "azure": integration(tenant, "azure", await azure_settings(destinations, container), events),
        # A catch hook gets links: nothing to ask it, reported as not checkable.
        "zapier": integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, events),
    }
    for config in configs.values():
        await configure(deployment, [worker], config)
    recipe, contents = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    first = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 5, 120)
    assert {r["outcome"] for r in first} == {"delivered"}, first
    ticket, preview = f"{recipe['recipeId']}-Ticket.pdf", f"{recipe['recipeId']}-Preview.png"
    good_ticket, good_preview = contents[("Ticket", "pdf")], contents[("Preview", "png")]
    changed = good_preview[:-1] + bytes([good_preview[-1] ^ 0xFF])  # same size, other bytes

    # At every destination that keeps files: the ticket deleted, the preview changed.
    folder = deployment.workdir / "deliveries" / tenant
    (folder / ticket).unlink()
    (folder / preview).write_bytes(changed)  # the same size: only its SHA-256 tells
    remote = destinations.sftp.root / tenant / "in"
    (remote / ticket).unlink()
    (remote / preview).write_bytes(changed[:-10])  # SFTP keeps no hash: a size that differs
    async with s3_client(destinations) as s3:
        await s3.delete_object(Bucket=bucket, Key=f"p/{ticket}")
        await s3.put_object(Bucket=bucket, Key=f"p/{preview}", Body=changed)  # by someone else: no sha256
    async with BlobServiceClient.from_connection_string(account_connection(destinations)) as service:
        blobs = service.get_container_client(container)
        await blobs.delete_blob(f"orders/{ticket}")
        await blobs.upload_blob(f"orders/{preview}", changed, overwrite=True)

    _, dry = await reconcile(deployment, tenant, "--dry-run")
    assert (dry["deliveries"], dry["files"], dry["notCheckable"], dry["errors"]) == (5, 4 * 6, 1, {}), dry
    assert (dry["missing"], dry["different"], dry["resent"]) == (4, 4, 0)
    assert {(p["integrationId"], p["name"], p["problem"]) for p in dry["problems"]} == {
        (configs[kind]["id"], name, problem)
        for kind in ("local", "sftp", "s3", "azure")
        for name, problem in ((ticket, "missing"), (preview, "different"))
    }
    assert await deployment.read_json("deliveries-retry", lambda d: d["tenant"] == tenant) == []  # sent nothing

    _, run = await reconcile(deployment, tenant)
    assert (run["missing"], run["different"], run["resent"], run["dryRun"]) == (4, 4, 4, False)
    again = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d.get("reconcile") == run["id"], 4, 120
    )
    assert {r["outcome"] for r in again} == {"delivered"}, again
    # Same delivery ids (so the same names, overwritten), attempts numbered on after the first.
    ids = {r["integrationId"]: r["deliveryId"] for r in first}
    assert all(r["deliveryId"] == ids[r["integrationId"]] and r["attempt"] == 2 for r in again)
    assert (folder / ticket).read_bytes() == good_ticket and (folder / preview).read_bytes() == good_preview
    assert (remote / ticket).read_bytes() == good_ticket and (remote / preview).read_bytes() == good_preview
    async with s3_client(destinations) as s3:
        held = await (await s3.get_object(Bucket=bucket, Key=f"p/{preview}"))["Body"].read()
        assert held == good_preview and (await s3.head_object(Bucket=bucket, Key=f"p/{ticket}"))["Metadata"]
    async with BlobServiceClient.from_connection_string(account_connection(destinations)) as service:
        blob = service.get_container_client(container).get_blob_client(f"orders/{ticket}")
        assert await (await blob.download_blob()).readall() == good_ticket

    _, second = await reconcile(deployment, tenant)
    assert (second["missing"], second["different"], second["resent"], second["errors"]) == (0, 0, 0, {}), second
    assert second["files"] == 4 * 6
    _, text, _ = await cli(deployment, "reconcile", "--tenant", tenant, "--since", "1h", "--dry-run")
    assert text.startswith("reconcile rcn-")
    assert "checked 5 deliveries, 24 files; missing 0, different 0, re-sent nothing (dry run), " in text
    assert "not checkable 1, errors 0" in text


async def test_a_destination_that_refuses_to_answer_is_an_error_of_its_integration(deployment, worker, destinations):
    tenant = unique("recerr")
    events = ["recipe.created"]
    bucket, container = f"gone-{uuid.uuid4().hex[:12]}", f"gone-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    folder = local_integration(tenant, events)
    sftp = integration(tenant, "sftp", sftp_settings(destinations, tenant), events)
    s3 = integration(tenant, "s3", s3_settings(destinations, bucket), events)
    azure = integration(tenant, "azure", await azure_settings(destinations, container), events)
    for config in (folder, sftp, s3, azure):
        await configure(deployment, [worker], config)
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 4, 90)
    # The server no longer takes the integration's login; the bucket and the container are gone.
    wrong = {**sftp, "settings": {**sftp["settings"], "password-secure": "wrong-password"}}
    assert put_integration(deployment, wrong).returncode == 0
    async with s3_client(destinations) as client:
        for item in (await client.list_objects_v2(Bucket=bucket)).get("Contents", []):
            await client.delete_object(Bucket=bucket, Key=item["Key"])
        await client.delete_bucket(Bucket=bucket)
    async with BlobServiceClient.from_connection_string(account_connection(destinations)) as service:
        await service.delete_container(container)

    code, tally = await reconcile(deployment, tenant, check=False)
    assert code == 1 and sorted(tally["errors"]) == sorted([sftp["id"], s3["id"], azure["id"]]), tally
    assert "wrong-password" not in str(tally["errors"])
    assert (tally["files"], tally["missing"], tally["different"]) == (6, 0, 0)  # the folder was still checked
    code, only = await reconcile(deployment, tenant, "--integration", folder["id"])
    assert code == 0 and (only["deliveries"], only["errors"]) == (1, {})
    # A deleted integration's deliveries cannot be checked either: its error, said so.
    deployment.cli("integrations", "delete", folder["id"])
    code, tally = await reconcile(deployment, tenant, check=False)
    assert code == 1 and tally["errors"][folder["id"]] == "the integration is deleted", tally
    code, _, err = await cli(deployment, "reconcile", "--tenant", tenant, "--since", "yesterday")
    assert code != 0 and "--since" in err


async def test_the_services_own_leftovers_are_removed_once_no_attempt_can_still_be_writing(
    deployment, worker, destinations
):
    tenant = unique("left")
    bucket = f"left-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    events = ["recipe.created"]
    folder = local_integration(tenant, events)
    sftp = integration(tenant, "sftp", sftp_settings(destinations, tenant), events)
    s3 = integration(tenant, "s3", s3_settings(destinations, bucket, prefix="p"), events)
    for config in (folder, sftp, s3):
        await configure(deployment, [worker], config)
    recipe, _ = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 3, 90)
    ticket = f"{recipe['recipeId']}-Ticket.pdf"

    def part(directory: Path, name: str, hours_old: float) -> Path:
        """A temporary file as a killed upload leaves it (the service's own name pattern)."""
        path = directory / f".{name}.{uuid.uuid4().hex}.part"
        path.write_bytes(b"half an upload")
        when = time.time() - hours_old * 3600
        os.utime(path, (when, when))
        return path

    local_dir, remote_dir = deployment.workdir / "deliveries" / tenant, destinations.sftp.root / tenant
    local_stale, sftp_stale = part(local_dir, ticket, 2), part(remote_dir, ticket, 2)
    sftp_fresh = part(remote_dir, ticket, 0)  # an upload that may still be running: kept by default
    unrelated = part(remote_dir, "not-of-this-window.pdf", 2)  # not a name of the window: never touched
    async with s3_client(destinations) as client:
        started = await client.create_multipart_upload(Bucket=bucket, Key=f"p/{ticket}")
        await client.upload_part(
            Bucket=bucket, Key=f"p/{ticket}", UploadId=started["UploadId"], PartNumber=1, Body=b"x" * 1024
        )

    # moto answers every multipart upload as begun on 2010-11-10 (moto/s3/responses.py): stale at once.
    _, dry = await reconcile(deployment, tenant, "--dry-run")
    stale = {(folder["id"], local_stale.name), (sftp["id"], sftp_stale.name), (s3["id"], f"p/{ticket}")}
    assert {(c["integrationId"], c["name"]) for c in dry["cleaned"]} == stale, dry
    assert local_stale.exists() and sftp_stale.exists()  # a dry run finds, keeps
    _, tally = await reconcile(deployment, tenant)
    assert {(c["integrationId"], c["name"]) for c in tally["cleaned"]} == stale, tally
    assert not local_stale.exists() and not sftp_stale.exists() and sftp_fresh.exists() and unrelated.exists()
    async with s3_client(destinations) as client:
        assert not (await client.list_multipart_uploads(Bucket=bucket)).get("Uploads")

    # Told that nothing older than now can still be running, the fresh one goes too.
    _, run = await reconcile(deployment, tenant, "--leftovers-after", "0s")
    assert {(c["integrationId"], c["name"]) for c in run["cleaned"]} == {(sftp["id"], sftp_fresh.name)}, run
    assert not sftp_fresh.exists() and unrelated.exists()
    assert (run["missing"], run["different"], run["errors"]) == (0, 0, {})  # the delivered files untouched


async def test_the_api_runs_reconcile_as_a_job_with_the_figures_the_cli_prints(deployment, worker, destinations):
    tenant = unique("recapi")
    folder = local_integration(tenant, ["order.created"])
    hook = integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"})
    for config in (folder, hook):
        await configure(deployment, [worker], config)
    recipe, contents = recipe_with_assets(destinations, tenant)
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    first = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2, 90)
    assert {r["outcome"] for r in first} == {"delivered"}, first
    ticket = f"{order['orderNumber']}_ID_{order['orderId']}_R_{recipe['recipeId']}_Ticket.pdf"
    held = deployment.workdir / "deliveries" / tenant / ticket
    held.unlink()  # cleaned by hand at the destination
    token, body = deployment.api_token, {"tenant": tenant, "orderId": order["orderId"], "since": "1h"}

    started = await start_job(worker.port, token, {**body, "dryRun": True})
    assert started["state"] == "running" and started["tenant"] == tenant and started["dryRun"] is True
    dry = await job_end(worker.port, token, started["poll"])
    assert dry["state"] == "done", dry
    figures = dry["result"]
    assert (figures["deliveries"], figures["files"], figures["missing"], figures["resent"]) == (2, 6, 1, 0)
    assert (figures["notCheckable"], figures["errors"], figures["id"]) == (1, {}, started["jobId"])
    assert dry["report"][0] == (
        f"reconcile {started['jobId']}: checked 2 deliveries, 6 files; missing 1, different 0, "
        "re-sent nothing (dry run), not checkable 1, errors 0, cleaned 0"
    )
    assert not held.exists()
    assert await deployment.read_json("deliveries-retry", lambda d: d["tenant"] == tenant) == []  # sent nothing

    started = await start_job(worker.port, token, body)
    run = await job_end(worker.port, token, started["poll"])
    assert (run["state"], run["result"]["missing"], run["result"]["resent"]) == ("done", 1, 1), run
    by_integration = {f["integrationId"]: f for f in run["result"]["integrations"]}
    assert by_integration[folder["id"]] == {
        "integrationId": folder["id"],
        "integrationType": "local",
        "deliveries": 1,
        "files": 6,
        "missing": 1,
        "different": 0,
        "resent": 1,
        "outcome": "problems",
        "error": None,
    }
    assert by_integration[hook["id"]]["outcome"] == "not checkable"
    assert [p["name"] for p in run["result"]["problems"]] == [ticket]
    # Sent again under its delivery id, marked with the job's id; the file is back as it was.
    again = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d.get("reconcile") == started["jobId"], 1, 90
    )
    assert again[0]["outcome"] == "delivered" and again[0]["integrationId"] == folder["id"]
    assert held.read_bytes() == contents[("Ticket", "pdf")]
    # The CLI's JSON of the same window says the same (one runner, one summary).
    _, cli_tally = await reconcile(deployment, tenant, "--order-id", order["orderId"], "--dry-run")
    assert (cli_tally["deliveries"], cli_tally["files"], cli_tally["missing"]) == (2, 6, 0)
    assert set(cli_tally) == set(run["result"])


async def test_the_reconciliation_api_refuses_bad_requests_with_what_is_wrong(deployment, worker):
    tenant = unique("recbad")
    async with worker.api() as client:
        for raw, words in [
            (b"{not json", "not JSON"),
            (b"[]", "JSON object"),
            (b'{"tenant": "t", "window": "1h"}', "unknown field(s): window"),
            (b"{}", "tenant: required"),
            (b'{"tenant": "Not A Tenant"}', "not a tenant name"),
            (b'{"tenant": "t", "since": "yesterday"}', "since: 'yesterday' is neither"),
            (b'{"tenant": "t", "since": "2999-01-01T00:00:00Z"}', "since must be in the past"),
            (b'{"tenant": "t", "dryRun": "yes"}', "dryRun must be a boolean"),
            (b'{"tenant": "t", "orderId": 42}', "orderId must be a string"),
        ]:
            r = await client.post("/v1/reconciliations", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and words in r.json()["error"], (raw, r.text)
        r = await client.post("/v1/reconciliations", json={"tenant": tenant, "integrationId": "nothing-here"})
        assert r.status_code == 404 and r.json() == {"error": f"tenant {tenant} has no integration 'nothing-here'"}
        for job_id in ("rcn-0000", "rcn-00000000-00000000-000000000000"):
            r = await client.get(f"/v1/reconciliations/{job_id}")
            assert r.status_code in (404, 410) and job_id in r.json()["error"], r.text
        r = await client.get("/v1/reconciliations/rcn-0000")
        assert r.status_code == 404 and r.json()["error"].startswith("no reconciliation job 'rcn-0000'")
    # A read-scope token may follow a job, not start one.
    read = deployment.cli("tokens", "issue", "--tenant", tenant, "--scope", "read").stdout.strip()

    async def known() -> bool:
        async with api(worker.port, read) as client:
            return (await client.get("/v1/whoami")).status_code == 200

    await wait_for(known, 30, "the worker to know the read token")
    async with api(worker.port, read) as client:
        r = await client.post("/v1/reconciliations", json={"tenant": tenant})
    assert r.status_code == 403 and "operate" in r.json()["error"], r.text


async def test_a_tenant_runs_one_reconciliation_at_a_time_and_a_worker_two(deployment, worker, destinations):
    silent = await SilentServer().start()
    tenants = [unique("recone"), unique("rectwo")]
    configs = {t: integration(t, "sftp", sftp_settings(destinations, t), ["recipe.created"]) for t in tenants}
    try:
        for tenant in tenants:
            await configure(deployment, [worker], configs[tenant])
            recipe, _ = recipe_with_assets(destinations, tenant)
            await deployment.produce_json("recipes", [recipe], "recipeId")
        for tenant in tenants:
            await deployment.wait_json("delivery-results", lambda d, t=tenant: d["tenant"] == t, 1, 90)
            # The server moved to an address that takes connections and never answers: a check of it waits.
            config = configs[tenant]
            moved = {**config, "settings": {**config["settings"], "port": silent.port}}
            assert put_integration(deployment, moved).returncode == 0
        token = deployment.api_token
        jobs = [await start_job(worker.port, token, {"tenant": t, "since": "1h"}) for t in tenants]
        for job in jobs:

            async def checking(job=job) -> dict | None:
                async with worker.api() as client:
                    body = (await client.get(job["poll"])).json()
                return (
                    body
                    if body["state"] == "running" and body["progress"]["phase"] == "checking destinations"
                    else None
                )

            running = await wait_for(checking, 60, f"job {job['jobId']} asking the destination")
            assert running["progress"] == {"phase": "checking destinations", "done": 0, "total": 1}
        async with worker.api() as client:
            again = await client.post("/v1/reconciliations", json={"tenant": tenants[0], "dryRun": True})
            third = await client.post("/v1/reconciliations", json={"tenant": unique("recthree")})
        assert again.status_code == 409 and again.json()["jobId"] == jobs[0]["jobId"], again.text
        assert again.json()["poll"] == jobs[0]["poll"]
        assert third.status_code == 429 and "try again when one is done" in third.json()["error"], third.text
        silent.release()  # the destination hangs up: its integration's error, and the jobs are done
        for tenant, job in zip(tenants, jobs, strict=True):
            ended = await job_end(worker.port, token, job["poll"])
            assert ended["state"] == "done" and list(ended["result"]["errors"]) == [configs[tenant]["id"]], ended
            assert [f["outcome"] for f in ended["result"]["integrations"]] == ["error"]
            assert ended["report"][-1].startswith(f"  error: {configs[tenant]['id']}: ")
        # Done, the tenant may start again.
        await job_end(worker.port, token, (await start_job(worker.port, token, {"tenant": tenants[0]}))["poll"])
    finally:
        await silent.stop()

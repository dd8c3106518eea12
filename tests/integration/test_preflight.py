"""Pre-flight checks through the worker, against the real asset host and destinations: a bad file fails
its whole delivery for good before anything reaches the destination, the failure e-mail says what to
fix upstream, `basic` and `off` let through what they do not check, good files of every kind deliver
with their sizes and SHA-256 in the results and the API, and a 1 GiB file is checked within the P4
memory budget."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import orjson
import pytest

from tests.deployments import configure, worker_knows
from tests.events import big_file_recipe, recipe_event, unique
from tests.files import BAD_FILES, MiB, big_digest, good_file
from tests.integrations import integration, s3_settings
from tests.security.test_bounded_inputs import reset_peak, status
from tests.stores import make_bucket, s3_client
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

MIMES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "svg": "image/svg+xml",
    "json": "application/json",
    "dst": "application/octet-stream",
    "txt": "text/plain",
}
# The bad kinds `basic` refuses too; `off` refuses none.
BASIC_REFUSES = {"empty", "html-error-page", "json-error-answer"}


def raw_name(recipe: dict, name: str, file_type: str) -> str:
    return f"{recipe['recipeId']}-{name}.{file_type}"


def recipe_of(destinations, tenant: str, files: list[tuple[str, str, bytes]], route: str = "assets") -> dict:
    """A raw-feed recipe whose files (name, type, bytes) the test asset host serves."""
    recipe = recipe_event(tenant)
    recipe["files"] = []
    for name, file_type, data in files:
        asset = f"{uuid.uuid4().hex}.{file_type}"
        destinations.http.add_asset(asset, data)
        recipe["files"].append(
            {
                "kind": "production",
                "name": name,
                "type": file_type,
                "mimeType": MIMES[file_type],
                "url": f"{destinations.http.base}/{route}/{asset}",
            }
        )
    return recipe


def local(tenant: str, mode: str | None, **fields) -> dict:
    doc = integration(tenant, "local", {"directory": f"{tenant}/{mode or 'default'}"}, ["recipe.created"], **fields)
    if mode is not None:
        doc["preflight"] = mode
    return doc


def names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


async def test_a_bad_file_fails_its_delivery_before_anything_reaches_the_destination(deployment, worker, destinations):
    tenant = unique("pre")
    alerts = f"alerts-{tenant}@ops.example"
    strict = local(tenant, None, failureNotificationList=alerts)  # no preflight given: strict, the default
    basic, off = local(tenant, "basic"), local(tenant, "off")
    # A catch hook gets links, not files: nothing is downloaded for it, so nothing is checked.
    hook = integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, ["recipe.created"])
    for config in (strict, basic, off, hook):
        await configure(deployment, [worker], config)
    for config, mode in ((strict, "strict"), (basic, "basic"), (off, "off")):
        assert orjson.loads(deployment.cli("integrations", "show", config["id"]).stdout)["preflight"] == mode
    assert (await worker_knows(worker, strict["id"]))["preflight"] == "strict"  # the API shows it too
    ticket = good_file("pdf", b"ticket")
    recipes = {
        kind: recipe_of(destinations, tenant, [("Ticket", "pdf", ticket), ("Front", file_type, data)])
        for kind, (file_type, data, _) in BAD_FILES.items()
    }
    await deployment.produce_json("recipes", list(recipes.values()), "recipeId")
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 4 * len(recipes), 120)
    by = {(r["integrationId"], r["recipeId"]): r for r in results}
    root = deployment.workdir / "deliveries" / tenant

    for kind, recipe in recipes.items():
        file_type, data, reason = BAD_FILES[kind]
        front = raw_name(recipe, "Front", file_type)
        refused = by[(strict["id"], recipe["recipeId"])]
        assert refused["outcome"] == "failed" and refused["final"] and refused["attempt"] == 1, refused
        assert refused["error"].startswith(f"pre-flight: {front}: ") and reason in refused["error"], refused
        assert refused["files"] == []
        # `basic` refuses empty files and error pages only; `off` hands everything over as it came.
        assert (by[(basic["id"], recipe["recipeId"])]["outcome"] == "failed") == (kind in BASIC_REFUSES), kind
        assert by[(off["id"], recipe["recipeId"])]["outcome"] == "delivered", kind
        assert (root / "off" / front).read_bytes() == data
        assert by[(hook["id"], recipe["recipeId"])]["outcome"] == "delivered", kind
    # Nothing of a refused delivery reached the strict destination, not even its good Ticket.
    assert names_in(root / "default") == set()
    assert not any(raw_name(recipes[k], "Ticket", "pdf") in names_in(root / "basic") for k in BASIC_REFUSES)

    # The failure e-mail says which file failed which check, and what to fix where the files come from.
    dst = recipes["truncated-dst"]
    front = raw_name(dst, "Front", "dst")

    def notice():
        return [m for m in destinations.smtp.inbox.to(alerts) if dst["recipeId"] in m["Subject"]]

    [mail] = await wait_for(notice, 60, "the failure notification")
    body = mail.get_payload(decode=True).decode()
    assert f"{front}: no end-of-design record: truncated?" in body
    assert "What to fix upstream:" in body and "re-export or re-upload it" in body

    # The worker's log line names the check (a word), beside the delivery's ids.
    logged = [orjson.loads(line) for line in worker.log.read_text().splitlines() if '"preflightCheck"' in line]
    assert any(e["preflightCheck"] == "end" and e["recipeId"] == dst["recipeId"] for e in logged), logged[-3:]

    # Once the asset is fixed upstream, a trigger delivers normally, with each file's size and SHA-256.
    fixed = good_file("dst", b"fixed")
    destinations.http.assets[dst["files"][1]["url"].rsplit("/", 1)[1]] = fixed
    deployment.cli("trigger", "--tenant", tenant, "--recipe-id", dst["recipeId"], "--integration", strict["id"])
    again = await deployment.wait_json(
        "delivery-results",
        lambda d: (
            d["integrationId"] == strict["id"] and d["recipeId"] == dst["recipeId"] and d["outcome"] == "delivered"
        ),
        1,
        90,
    )
    files = {f["name"]: f for f in again[0]["files"]}
    ticket_name = raw_name(dst, "Ticket", "pdf")
    assert files[front] == {"name": front, "bytes": len(fixed), "sha256": hashlib.sha256(fixed).hexdigest()}
    assert files[ticket_name]["sha256"] == hashlib.sha256(ticket).hexdigest()
    assert f"{dst['recipeId']}-manifest.json" in files  # the manifest is a delivered file too
    assert (root / "default" / front).read_bytes() == fixed

    async def shown_by_the_api():
        async with worker.api() as api:
            view = (await api.get(f"/v1/recipes/{dst['recipeId']}")).json()
        deliveries = [d for i in view["integrations"] if i["integrationId"] == strict["id"] for d in i["deliveries"]]
        sized = {f["name"]: f for d in deliveries if d["state"] == "delivered" for f in d["files"]}
        return sized if front in sized else None

    sized = await wait_for(shown_by_the_api, 30, "the delivered files in the recipe's view")
    assert sized[front]["bytes"] == len(fixed) and sized[front]["sha256"] == hashlib.sha256(fixed).hexdigest()


async def test_a_file_shorter_than_its_content_length_fails_for_good(deployment, worker, destinations):
    tenant = unique("short")
    strict = local(tenant, "strict")
    await configure(deployment, [worker], strict)
    data = good_file("pdf", b"cut in transfer") * 4  # the host announces all of it and sends half
    recipe = recipe_of(destinations, tenant, [("Ticket", "pdf", data)], route="short")
    await deployment.produce_json("recipes", [recipe], "recipeId")
    [result] = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 1, 90)
    assert result["outcome"] == "failed" and result["final"], result
    name = raw_name(recipe, "Ticket", "pdf")
    assert result["error"] == (
        f"pre-flight: {name}: {len(data) // 2} of the {len(data)} bytes the asset host announced (Content-Length) "
        "arrived: cut off?"
    )
    assert names_in(deployment.workdir / "deliveries" / tenant / "strict") == set()


async def test_good_files_of_every_kind_deliver_with_sizes_and_sha256(deployment, worker, destinations):
    tenant = unique("good")
    bucket = f"pre-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    folder = local(tenant, "strict")
    s3 = integration(tenant, "s3", s3_settings(destinations, bucket), ["recipe.created"])
    for config in (folder, s3):
        await configure(deployment, [worker], config)
    contents = {file_type: good_file(file_type, file_type.encode()) for file_type in MIMES}
    recipe = recipe_of(destinations, tenant, [(f"File{t}", t, data) for t, data in contents.items()])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    results = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2, 90)
    assert {r["outcome"] for r in results} == {"delivered"}, results
    expected = {
        raw_name(recipe, f"File{t}", t): {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for t, d in contents.items()
    }
    for result in results:
        listed = {f["name"]: {"bytes": f["bytes"], "sha256": f["sha256"]} for f in result["files"]}
        assert {n: listed[n] for n in expected} == expected
        assert result["bytes"] == sum(f["bytes"] for f in result["files"])
    folder_path = deployment.workdir / "deliveries" / tenant / "strict"
    assert all(hashlib.sha256((folder_path / n).read_bytes()).hexdigest() == e["sha256"] for n, e in expected.items())
    async with s3_client(destinations) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    assert {o["Key"]: o["Size"] for o in listed["Contents"] if o["Key"] in expected} == {
        n: e["bytes"] for n, e in expected.items()
    }


async def test_a_1_gib_file_is_checked_as_it_streams_within_the_memory_budget(deployment, worker, destinations):
    tenant = unique("gib")
    folder = local(tenant, "strict")
    await configure(deployment, [worker], folder)
    size = 1024 * MiB
    recipe = big_file_recipe(destinations, tenant, size)
    assert worker.proc is not None
    before = reset_peak(worker.proc.pid)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    [result] = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 1, 280)
    grown = status(worker.proc.pid)["VmHWM"] - before
    print(f"\nworker peak RSS growth, a 1 GiB DST checked and delivered: {grown / MiB:.1f} MiB")
    assert result["outcome"] == "delivered", result
    delivered = deployment.workdir / "deliveries" / tenant / "strict" / raw_name(recipe, "Front", "dst")
    try:
        [front] = [f for f in result["files"] if f["name"] == delivered.name]
        assert front == {"name": delivered.name, "bytes": size, "sha256": big_digest("dst", size)}
        assert delivered.stat().st_size == size
    finally:
        delivered.unlink(missing_ok=True)  # a GiB the rest of the session does not need
    assert grown < 64 * MiB  # P4's budget

"""Operators replay a window of input and re-drive what failed, on the shared worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncssh
import pytest

from tests.deployments import configure, worker_knows
from tests.events import order_event, recipe_event, recipe_with_assets, unique
from tests.integrations import hook_integration, integration, local_integration, sftp_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def figures(output: str) -> str:
    """`read N, matched M, published P` from the CLI's first line."""
    return output.strip().splitlines()[0].split(": ", 1)[1]


async def test_a_window_of_orders_replayed_for_one_tenant_gives_exactly_its_deliveries(
    deployment, worker, destinations
):
    mine, other = unique("replay"), unique("other")
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    hook = hook_integration(destinations, mine, successNotificationList="")
    files = local_integration(mine, ["order.created"])
    for config in (hook, files, hook_integration(destinations, other, successNotificationList="")):
        await configure(deployment, [worker], config)
    recipes = {t: recipe_event(t) for t in (mine, other)}
    await deployment.produce_json("recipes", list(recipes.values()), "recipeId")
    orders = [order_event(mine, [recipes[mine]["recipeId"]]) for _ in range(3)]
    await deployment.produce_json("orders", [*orders, order_event(other, [recipes[other]["recipeId"]])], "orderId")
    first = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == mine, 6)
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == other, 1)
    first_ids = sorted(destinations.http.hook_ids(mine))
    assert len(first_ids) == 3

    dry = deployment.cli("replay", "orders", "--since", since, "--tenant", mine, "--dry-run")
    assert figures(dry.stdout).endswith("matched 3, published nothing (dry run)"), dry.stdout
    # The shared orders topic also holds other tests' broken input: count raw records.
    on_orders = [r for r in await deployment.read("orders") if mine.encode() in (r.value or b"")]
    assert len(on_orders) == 3, "the dry run published nothing"

    run = deployment.cli("replay", "orders", "--since", since, "--tenant", mine, "--to-integration", hook["id"])
    assert figures(run.stdout).endswith("matched 3, published 3"), run.stdout
    replay_id = run.stdout.split()[1].rstrip(":")
    replayed = await deployment.wait_json("delivery-results", lambda d: d.get("replay") == replay_id, 3)
    assert {(r["tenant"], r["integrationId"], r["outcome"]) for r in replayed} == {(mine, hook["id"], "delivered")}
    # Same events, same delivery ids: the hook sees the same webhook ids again (an overwrite, not a copy).
    assert sorted(r["deliveryId"] for r in replayed) == first_ids
    await wait_for(lambda: len(destinations.http.hook_ids(mine)) == 6, 60, "the replayed hook calls")
    assert sorted(destinations.http.hook_ids(mine)[3:]) == first_ids
    assert len(await deployment.read_json("delivery-results", lambda d: d["tenant"] == mine)) == len(first) + 3
    assert len(await deployment.read_json("delivery-results", lambda d: d["tenant"] == other)) == 1
    assert destinations.http.hook_ids(other) and len(destinations.http.hook_ids(other)) == 1


async def test_a_redrive_delivers_what_failed_once_the_sftp_destination_is_fixed(deployment, worker, destinations):
    tenant = unique("redrive")
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    wrong_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    broken = integration(tenant, "sftp", {**sftp_settings(destinations, tenant), "host-key": wrong_key})
    await configure(deployment, [worker], broken)
    recipe, contents = recipe_with_assets(destinations, tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order_event(tenant, [recipe["recipeId"]])], "orderId")
    [failed] = await deployment.wait_json("deliveries-failed", lambda d: d["command"]["tenant"] == tenant, 1)

    fixed = {**broken, "description": "host key fixed", "settings": sftp_settings(destinations, tenant)}
    await configure(deployment, [worker], fixed)

    async def fixed_known() -> bool:
        return (await worker_knows(worker, fixed["id"]))["description"] == "host key fixed"

    await wait_for(fixed_known, 60, "the worker to route with the fixed configuration")

    dry = deployment.cli("redrive", "--tenant", tenant, "--error", "host key", "--since", since, "--dry-run")
    assert figures(dry.stdout).endswith("matched 1, published nothing (dry run)"), dry.stdout
    run = deployment.cli("redrive", "--tenant", tenant, "--since", since)
    assert figures(run.stdout).endswith("matched 1, published 1"), run.stdout
    [delivered] = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 1
    )
    assert delivered["deliveryId"] == failed["command"]["deliveryId"] and delivered["redrive"]
    assert delivered["attempt"] == failed["command"]["attempt"] + 1
    remote = destinations.sftp.root / tenant
    assert {p.read_bytes() for p in remote.iterdir() if not p.name.endswith("manifest.json")} == set(contents.values())

    # Run again: what was delivered since it failed is left out, by the CLI and by the API alike.
    again = deployment.cli("redrive", "--tenant", tenant, "--since", since)
    assert figures(again.stdout).endswith("matched 0, published 0"), again.stdout
    assert "1 failed deliveries were left out: delivered since they failed" in again.stdout
    async with worker.api() as api:
        answer = await api.post("/v1/redrives", json={"tenant": tenant, "since": since, "dryRun": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["matched"] == 0 and answer.json()["alreadyDelivered"] == 1
        bad = await api.post("/v1/replays", json={"topic": "deliveries", "since": "1h"})
        assert bad.status_code == 400 and "only recipes and orders" in bad.json()["error"]
        bad = await api.post("/v1/replays", json={"topic": "orders"})
        assert bad.status_code == 400 and "give a window" in bad.json()["error"]
        api.headers["Authorization"] = "Bearer wrong"
        assert (await api.post("/v1/redrives", json={})).status_code == 401


def test_bad_replay_arguments_are_a_message_and_an_exit_code(deployment):
    result = deployment.cli("replay", "orders", "--tenant", "acme", check=False)
    assert result.returncode != 0 and "give a window" in result.stderr
    result = deployment.cli("replay", "orders", "--since", "yesterday", check=False)
    assert result.returncode != 0 and "neither an ISO 8601 time" in result.stderr
    result = deployment.cli("replay", "deliveries", "--since", "1h", check=False)
    assert result.returncode != 0

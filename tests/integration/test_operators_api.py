"""The operator API against two running workers: any worker answers any look-up, triggers by mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.kafka_admin import end_offsets
from tests.deployments import Deployment, Worker, configure, new_deployment
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import integration, local_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

READ_TOKEN = "read-only-token"


@dataclass
class Shop:
    """One tenant on two workers: an order whose hook delivery failed for good (the local folder got
    it), and an order whose recipe has not arrived."""

    deployment: Deployment
    workers: list[Worker]
    tenant: str
    hook: dict[str, Any]
    folder: dict[str, Any]
    failed_order: dict[str, Any]
    waiting_order: dict[str, Any]
    missing_recipe: str


def client(worker: Worker, token: str | None = "test-token") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}", headers=headers, timeout=30)


async def get_json(worker: Worker, path: str, token: str | None = "test-token") -> tuple[int, Any]:
    async with client(worker, token) as api:
        r = await api.get(path)
    return r.status_code, r.json()


async def answered_by(worker: Worker, path: str) -> str:
    async with client(worker) as api:
        r = await api.get(path)
    assert r.status_code == 200, r.text
    return r.headers["X-Outbound-Answered-By"]


async def one_owner_answers_both(shop: Shop, path: str) -> None:
    """Both workers' answers come from the key's owner: the other worker forwarded the request."""
    owners = {await answered_by(w, path) for w in shop.workers}
    assert len(owners) == 1 and owners <= {f"http://127.0.0.1:{w.port}" for w in shop.workers}, owners


async def until_answer(worker: Worker, path: str, accept, what: str, timeout: float = 90.0) -> Any:
    """The answer of `path` once `accept(body)` holds (tables fill asynchronously; no sleeps)."""

    seen: list[Any] = []

    async def answered() -> Any:
        status, body = await get_json(worker, path)
        seen[:] = [status, body]
        return body if status == 200 and accept(body) else None

    try:
        return await wait_for(answered, timeout, what)
    except AssertionError as exc:
        # What the worker last answered says which part was missing.
        raise AssertionError(f"{exc}; {worker.name} last answered {seen}") from None


def hook_of(destinations, tenant: str) -> dict[str, Any]:
    return integration(
        tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, id=unique(f"{tenant}-hook-")
    )


@pytest.fixture(scope="module")
async def shop(kafka, destinations) -> Shop:
    deployment = new_deployment(kafka, OUTBOUND_API_READ_TOKEN=READ_TOKEN, **destinations.worker_env())
    workers = [Worker(deployment, "ops-a").start(), Worker(deployment, "ops-b").start()]
    try:
        for w in workers:
            await w.ready()
        tenant = unique("shop")
        hook, folder = hook_of(destinations, tenant), local_integration(tenant, ["order.created"])
        await configure(deployment, workers, hook)
        await configure(deployment, workers, folder)
        # 404 is permanent: the hook's delivery fails for good at its first attempt (a 410 would also turn it off).
        destinations.http.hook_statuses[tenant] = [404]
        recipe, _ = recipe_with_assets(destinations, tenant)
        failed_order = order_event(tenant, [recipe["recipeId"]], occurredAt="2026-11-27T09:00:00Z")
        missing_recipe = unique("r-missing-")
        waiting_order = order_event(tenant, [missing_recipe], occurredAt="2026-11-27T09:05:00Z")
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [failed_order], "orderId")
        await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2, 90)
        await deployment.produce_json("orders", [waiting_order], "orderId")
        yield Shop(deployment, workers, tenant, hook, folder, failed_order, waiting_order, missing_recipe)
    finally:
        for w in workers:
            w.stop()


def by_integration(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["integrationId"]: i for i in view["integrations"]}


async def test_tokens_and_scopes(shop):
    w = shop.workers[0]
    order_path = f"/v1/orders/{shop.failed_order['orderId']}"
    for token, status in ((None, 401), ("wrong-token", 401), (READ_TOKEN, 200), ("test-token", 200)):
        got, body = await get_json(w, order_path, token)
        assert got == status, (token, body)
        if status == 401:
            assert "token" in body["error"]
    async with client(w, READ_TOKEN) as api:
        r = await api.post("/v1/triggers", json={"tenant": shop.tenant, "orderId": shop.failed_order["orderId"]})
    assert r.status_code == 403 and "operate" in r.json()["error"]
    assert (await get_json(w, "/v1/whoami", READ_TOKEN))[1] == {"scope": "read"}
    # The token never shows up in a log line.
    for worker in shop.workers:
        assert READ_TOKEN not in worker.log.read_text() and "wrong-token" not in worker.log.read_text()


async def test_bad_requests_say_what_is_wrong(shop):
    w = shop.workers[1]
    status, body = await get_json(w, f"/v1/tenants/{shop.tenant}/orders?pageSize=100000")
    assert status == 400 and "pageSize" in body["error"]
    status, body = await get_json(w, "/v1/tenants/Not_A_Tenant/orders")
    assert status == 400 and "tenant" in body["error"]
    status, body = await get_json(w, "/v1/orders/no-such-order")
    assert status == 404 and "no-such-order" in body["error"]
    status, body = await get_json(w, f"/v1/tenants/{shop.tenant}/order-numbers/no-such-number")
    assert status == 404 and "no-such-number" in body["error"]
    async with client(w) as api:
        cases = [
            (b"{not json", 400, "not JSON"),
            (b'{"tenant": "x", "orderId": "o1", "mode": "some"}', 400, "mode"),
            (b'{"tenant": "x", "orderId": "o1", "colour": "red"}', 400, "colour"),
            (b'{"tenant": "x", "orderId": "o1", "recipeId": "r1"}', 400, "exactly one"),
            (f'{{"tenant": "{shop.tenant}", "orderNumber": "nope"}}'.encode(), 404, "order number 'nope'"),
            (f'{{"tenant": "{shop.tenant}", "recipeId": "r-nope"}}'.encode(), 404, "recipeId 'r-nope'"),
        ]
        for raw, status, words in cases:
            r = await api.post("/v1/triggers", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == status and words in r.json()["error"], (raw, r.text)


async def test_every_worker_gives_the_same_order_view(shop):
    number = shop.failed_order["orderNumber"]
    path = f"/v1/tenants/{shop.tenant}/order-numbers/{number}"
    views = [
        await until_answer(w, path, lambda b: len(b["integrations"]) == 2, f"the order view from {w.name}")
        for w in shop.workers
    ]
    assert views[0] == views[1]
    await one_owner_answers_both(shop, path)
    view = views[0]
    assert view["orderId"] == shop.failed_order["orderId"] and view["summary"] == "failed"
    assert [line["recipeId"] for line in view["lines"]] == [shop.failed_order["lineItems"][0]["recipeId"]]
    hook, folder = by_integration(view)[shop.hook["id"]], by_integration(view)[shop.folder["id"]]
    assert hook["state"] == "failed" and folder["state"] == "delivered"
    [failed] = hook["deliveries"]
    assert failed["attempts"][0]["outcome"] == "failed" and "404" in failed["attempts"][0]["error"]
    assert failed["attempts"][0]["startedAt"] and failed["eventType"] == "order.created"
    [delivered] = folder["deliveries"]
    # The recipe's five files and the manifest, each with the size and SHA-256 its result gave.
    assert len(delivered["files"]) == 6 and delivered["files"][-1]["name"].endswith("_manifest.json")
    assert all(f["bytes"] and len(f["sha256"]) == 64 for f in delivered["files"])
    assert delivered["attempts"][0]["bytes"] == sum(f["bytes"] for f in delivered["files"])
    assert all(f["name"].startswith(f"{number}_ID_") for f in delivered["files"])
    text = str(view)
    assert "customer" not in text and "shippingAddress" not in text

    by_id = await until_answer(shop.workers[1], f"/v1/orders/{shop.failed_order['orderId']}", lambda b: True, "by id")
    assert by_id == view
    recipe_id = view["lines"][0]["recipeId"]
    recipe = await until_answer(shop.workers[0], f"/v1/recipes/{recipe_id}", lambda b: b["orders"], "the recipe")
    assert recipe["orders"] == [{"orderId": view["orderId"], "orderNumber": number}]
    status = await until_answer(shop.workers[1], f"/v1/status/orders/{view['orderId']}", lambda b: True, "status")
    assert {d["state"] for d in status["deliveries"]} == {"failed", "delivered"}


async def test_an_order_waiting_for_its_recipe(shop):
    path = f"/v1/orders/{shop.waiting_order['orderId']}"
    for w in shop.workers:
        view = await until_answer(w, path, lambda b: b["lines"][0]["state"], f"the waiting line from {w.name}")
        assert view["lines"][0] == {**view["lines"][0], "recipeId": shop.missing_recipe, "state": "waiting for recipe"}
        assert view["summary"] == "waiting" and view["integrations"] == []
    pending = f"/v1/internal/pending-links/{shop.missing_recipe}"
    for w in shop.workers:
        assert (await get_json(w, pending))[1]["orderIds"] == [shop.waiting_order["orderId"]]
    await one_owner_answers_both(shop, pending)


async def test_recent_orders_newest_first_from_any_worker(shop):
    path = f"/v1/tenants/{shop.tenant}/orders"
    lists = [
        await until_answer(w, path, lambda b: b["total"] == 2 and b["items"][1]["summary"] == "failed", "the list")
        for w in shop.workers
    ]
    assert lists[0] == lists[1]
    await one_owner_answers_both(shop, path)
    waiting, failed = lists[0]["items"]
    assert waiting["orderId"] == shop.waiting_order["orderId"] and waiting["summary"] == "waiting"
    assert failed["orderId"] == shop.failed_order["orderId"]
    assert {i["integrationId"]: i["state"] for i in failed["integrations"]} == {
        shop.hook["id"]: "failed",
        shop.folder["id"]: "delivered",
    }
    only_failed = (await get_json(shop.workers[1], path + "?failed=true&pageSize=1"))[1]
    assert [i["orderId"] for i in only_failed["items"]] == [shop.failed_order["orderId"]]
    second_page = (await get_json(shop.workers[0], path + "?pageSize=1&page=2"))[1]
    assert second_page["items"] == [failed] and second_page["total"] == 2
    failures = (await get_json(shop.workers[1], f"/v1/tenants/{shop.tenant}/failures?days=1"))[1]
    assert [i["orderId"] for i in failures["items"]] == [shop.failed_order["orderId"]]


async def test_triggers_failed_only_by_number_then_all(shop, destinations):
    deployment, tenant = shop.deployment, shop.tenant
    number, order_id = shop.failed_order["orderNumber"], shop.failed_order["orderId"]
    await until_answer(shop.workers[0], f"/v1/orders/{order_id}", lambda b: b["summary"] == "failed", "failed")
    triggers_before = await end_offsets({"bootstrap_servers": deployment.bootstrap}, deployment.topic("triggers"))
    async with client(shop.workers[1]) as api:
        r = await api.post("/v1/triggers", json={"tenant": tenant, "orderNumber": number, "dryRun": True})
        assert r.status_code == 200, r.text
        preview = r.json()
        assert preview["dryRun"] and preview["mode"] == "failed-only"
        assert [(d["integrationId"], d["recipeId"]) for d in preview["deliveries"]] == [
            (shop.hook["id"], shop.failed_order["lineItems"][0]["recipeId"])
        ]
        assert preview["deliveries"][0]["files"] and "deliveryId" not in preview["deliveries"][0]
        dry_all = (
            await api.post("/v1/triggers", json={"tenant": tenant, "orderId": order_id, "dryRun": True, "mode": "all"})
        ).json()
        assert {d["integrationId"] for d in dry_all["deliveries"]} == {shop.hook["id"], shop.folder["id"]}
    assert (
        await end_offsets({"bootstrap_servers": deployment.bootstrap}, deployment.topic("triggers")) == triggers_before
    )
    assert len(await deployment.read_json("deliveries", lambda d: d["tenant"] == tenant)) == 2

    # The hook works again; the failed delivery is triggered by order number, from either worker.
    assert destinations.http.hook_statuses[tenant] == []
    hook_calls = len(destinations.http.hook_requests[tenant])
    async with client(shop.workers[0]) as api:
        r = await api.post("/v1/triggers", json={"tenant": tenant, "orderNumber": number, "requestedBy": "test"})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert r.headers["Location"] == accepted["poll"] == f"/v1/orders/{order_id}/triggers/{accepted['triggerId']}"
    for w in shop.workers:
        planned = await until_answer(
            w, accepted["poll"], lambda b: b["planned"] and b["deliveries"][0]["state"] == "delivered", "the redelivery"
        )
        assert [d["integrationId"] for d in planned["deliveries"]] == [shop.hook["id"]]
        assert [d["deliveryId"] for d in planned["deliveries"]] == [d["deliveryId"] for d in accepted["expected"]]
    assert len(destinations.http.hook_requests[tenant]) == hook_calls + 1
    manual = await deployment.read_json("deliveries", lambda d: d["tenant"] == tenant and d["manual"])
    assert [d["integrationId"] for d in manual] == [shop.hook["id"]]
    view = await until_answer(shop.workers[1], f"/v1/orders/{order_id}", lambda b: b["summary"] == "delivered", "ok")
    assert [d["state"] for d in by_integration(view)[shop.hook["id"]]["deliveries"]] == ["delivered", "failed"]

    # Nothing failed any more: failed-only has nothing to send, `all` sends everything again.
    async with client(shop.workers[1]) as api:
        nothing = await api.post("/v1/triggers", json={"tenant": tenant, "orderId": order_id})
        assert nothing.status_code == 200 and nothing.json()["triggerId"] is None
        again = await api.post("/v1/triggers", json={"tenant": tenant, "orderId": order_id, "mode": "all"})
    assert again.status_code == 202
    done = await until_answer(
        shop.workers[0],
        again.json()["poll"],
        lambda b: b["planned"] and {d["state"] for d in b["deliveries"]} == {"delivered"},
        "everything delivered again",
    )
    assert {d["integrationId"] for d in done["deliveries"]} == {shop.hook["id"], shop.folder["id"]}


async def test_cli_status_and_dry_run(shop):
    w = shop.workers[0]
    env = {"OUTBOUND_API_URL": f"http://127.0.0.1:{w.port}"}
    number = shop.waiting_order["orderNumber"]
    shown = shop.deployment.cli("status", "--tenant", shop.tenant, "--order-number", number, **env)
    assert f"order {number}" in shown.stdout and "waiting for recipe" in shown.stdout
    shown = shop.deployment.cli("status", "--order-id", shop.failed_order["orderId"], **env)
    assert shop.hook["id"] in shown.stdout and "integration" in shown.stdout.splitlines()[2]
    dry = shop.deployment.cli(
        "trigger",
        "--tenant",
        shop.tenant,
        "--order-id",
        shop.failed_order["orderId"],
        "--mode",
        "all",
        "--dry-run",
        **env,
    )
    assert "dry run (all): 2 deliveries" in dry.stdout and shop.folder["id"] in dry.stdout
    missing = shop.deployment.cli("status", "--order-id", "nope", check=False, **env)
    assert missing.returncode == 1 and "404" in missing.stderr

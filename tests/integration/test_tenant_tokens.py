"""Tenant tokens against two running workers: every route of the operator API on the token's own
tenant, on another tenant (answered as if it did not exist), read scope on operate routes, and a
revoked token, asked of both workers (so forwarded requests are covered too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.api_jobs import api, job_end, start_job
from tests.deployments import Deployment, Worker, configure, new_deployment
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import integration, local_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Tenant:
    name: str
    hook: dict[str, Any]
    failed_order: dict[str, Any]
    recipe_id: str
    waiting_order: dict[str, Any]
    missing_recipe: str
    trigger_id: str = ""


@dataclass
class Setup:
    deployment: Deployment
    workers: list[Worker]
    own: Tenant
    other: Tenant
    tokens: dict[str, str] = field(default_factory=dict)  # read, operate: the own tenant's


async def call(worker: Worker, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{worker.port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:
        if method == "GET":
            return await api.get(path)
        return await api.post(path, json=body)


def issue(deployment: Deployment, tenant: str, scope: str) -> tuple[str, str]:
    """The new token's id and the token (printed alone on stdout, so that a script can take it)."""
    result = deployment.cli("tokens", "issue", "--tenant", tenant, "--scope", scope, "--note", f"test {scope}")
    token = result.stdout.strip()
    assert len(token) >= 43 and result.stderr.startswith("issued tok-"), result
    return result.stderr.split()[1], token


async def a_tenant(deployment: Deployment, workers: list[Worker], destinations) -> Tenant:
    name = unique("tenant")
    hook = integration(name, "zapier", {"hook-url": f"{destinations.http.base}/hook/{name}"}, id=unique(f"{name}-h-"))
    await configure(deployment, workers, hook)
    await configure(deployment, workers, local_integration(name, ["order.created"]))
    destinations.http.hook_statuses[name] = [404]  # the hook's delivery fails for good at once
    recipe, _ = recipe_with_assets(destinations, name)
    failed = order_event(name, [recipe["recipeId"]])
    missing_recipe = unique("r-missing-")
    waiting = order_event(name, [missing_recipe])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [failed, waiting], "orderId")
    return Tenant(name, hook, failed, recipe["recipeId"], waiting, missing_recipe)


@pytest.fixture(scope="module")
async def setup(kafka, destinations) -> Setup:
    deployment = new_deployment(kafka, **destinations.worker_env())
    workers = [Worker(deployment, "tenant-a").start(), Worker(deployment, "tenant-b").start()]
    try:
        for w in workers:
            await w.ready()
        own, other = [await a_tenant(deployment, workers, destinations) for _ in range(2)]
        for t in (own, other):
            await deployment.wait_json("delivery-results", lambda d, t=t: d["tenant"] == t.name, 2, 90)
        got = Setup(deployment, workers, own, other)
        got.tokens = {scope: issue(deployment, own.name, scope)[1] for scope in ("read", "operate")}
        # A trigger on each tenant's failed order (the global token for the other tenant's).
        for t, token in ((own, got.tokens["operate"]), (other, deployment.api_token)):
            r = await call(
                workers[0], token, "POST", "/v1/triggers", {"tenant": t.name, "orderId": t.failed_order["orderId"]}
            )
            assert r.status_code == 202, r.text
            t.trigger_id = r.json()["triggerId"]
        for t in (own, other):
            path = f"/v1/orders/{t.failed_order['orderId']}/triggers/{t.trigger_id}"

            async def planned(path: str = path) -> bool:
                r = await call(workers[1], deployment.api_token, "GET", path)
                return r.status_code == 200 and r.json()["planned"]

            await wait_for(planned, 90, f"trigger {t.trigger_id} planned")
        yield got
    finally:
        for w in workers:
            w.stop()


@dataclass
class Case:
    """One request as the own tenant's token asks it of its own tenant, and of the other tenant.

    `hidden` is the part of the other request that names another tenant's thing: the same request
    with it replaced by a name nothing has must get the same answer, byte for byte."""

    method: str
    own: str
    other: str | None = None
    hidden: str = ""
    own_body: Any = None
    other_body: Any = None
    operate: bool = False
    other_status: int = 404


def get(own: str, other: str, hidden: str, other_status: int = 404) -> Case:
    return Case("GET", own, other, hidden, other_status=other_status)


def post(path: str, hidden: str, own_body: Any, other_body: Any, other_status: int = 404) -> Case:
    return Case("POST", path, path, hidden, own_body, other_body, operate=True, other_status=other_status)


def cases(s: Setup) -> list[Case]:
    a, b = s.own, s.other
    a_order, b_order = a.failed_order["orderId"], b.failed_order["orderId"]
    b_number = b.failed_order["orderNumber"]
    return [
        Case("GET", "/v1/whoami"),
        get(f"/v1/integrations?tenant={a.name}", f"/v1/integrations?tenant={b.name}", b.name, 200),
        get(f"/v1/orders/{a_order}", f"/v1/orders/{b_order}", b_order),
        get(
            f"/v1/tenants/{a.name}/order-numbers/{a.failed_order['orderNumber']}",
            f"/v1/tenants/{b.name}/order-numbers/{b_number}",
            b_number,
        ),
        get(f"/v1/recipes/{a.recipe_id}", f"/v1/recipes/{b.recipe_id}", b.recipe_id),
        get(
            f"/v1/orders/{a_order}/triggers/{a.trigger_id}",
            f"/v1/orders/{b_order}/triggers/{b.trigger_id}",
            b_order,
            200,
        ),
        get(f"/v1/tenants/{a.name}/orders", f"/v1/tenants/{b.name}/orders", b.name, 200),
        get(f"/v1/tenants/{a.name}/failures", f"/v1/tenants/{b.name}/failures", b.name, 200),
        get(f"/v1/status/orders/{a_order}", f"/v1/status/orders/{b_order}", b_order),
        get(
            f"/v1/internal/pending-links/{a.missing_recipe}",
            f"/v1/internal/pending-links/{b.missing_recipe}",
            b.missing_recipe,
            200,
        ),
        post(
            "/v1/triggers",
            b_order,
            {"tenant": a.name, "orderId": a_order, "dryRun": True, "mode": "all"},
            {"tenant": b.name, "orderId": b_order, "dryRun": True},
        ),
        post(
            "/v1/triggers",
            b_order,
            {"tenant": a.name, "orderNumber": a.failed_order["orderNumber"], "dryRun": True, "mode": "all"},
            {"tenant": a.name, "orderId": b_order, "dryRun": True},
        ),
        post(
            "/v1/triggers",
            b.hook["id"],
            {"tenant": a.name, "orderId": a_order, "integrationId": a.hook["id"], "dryRun": True, "mode": "all"},
            {"tenant": a.name, "orderId": a_order, "integrationId": b.hook["id"], "dryRun": True},
        ),
        post(
            "/v1/replays",
            b.hook["id"],
            {"topic": "orders", "since": "1h", "dryRun": True},
            {"topic": "orders", "since": "1h", "toIntegration": b.hook["id"], "dryRun": True},
        ),
        post(
            "/v1/replays",
            b.name,
            {"topic": "orders", "since": "1h", "tenant": a.name, "dryRun": True},
            {"topic": "orders", "since": "1h", "tenant": b.name, "dryRun": True},
            other_status=403,
        ),
        post("/v1/redrives", b.name, {"dryRun": True}, {"tenant": b.name, "dryRun": True}, other_status=403),
        Case(
            "POST",
            f"/v1/integrations/{a.hook['id']}/enable",
            f"/v1/integrations/{b.hook['id']}/enable",
            b.hook["id"],
            operate=True,
        ),
    ]


def hide(value: Any, hidden: str, instead: str) -> Any:
    return orjson.loads(orjson.dumps(value).decode().replace(hidden, instead)) if value is not None else None


async def test_a_tenant_token_on_its_own_tenant_on_every_route(setup):
    for case in cases(setup):
        for w in setup.workers:
            r = await call(w, setup.tokens["operate"], case.method, case.own, case.own_body)
            assert r.status_code == 200, (w.name, case.own, case.own_body, r.text)
            if case.method == "GET" and "/whoami" not in case.own:
                mine = (setup.own.name, setup.own.failed_order["orderId"], setup.own.waiting_order["orderId"])
                assert any(word in r.text for word in mine), (case.own, r.text)
    w = setup.workers[0]
    body = (await call(w, setup.tokens["read"], "GET", "/v1/whoami")).json()
    assert body == {"scope": "read", "tenant": setup.own.name}
    # The own tenant's lists hold its orders, and only its integrations are listed, whatever is asked.
    listed = (await call(w, setup.tokens["read"], "GET", f"/v1/tenants/{setup.own.name}/orders")).json()
    assert {i["orderId"] for i in listed["items"]} == {
        setup.own.failed_order["orderId"],
        setup.own.waiting_order["orderId"],
    }
    everything = (await call(w, setup.tokens["read"], "GET", "/v1/integrations")).json()["integrations"]
    assert {i["tenant"] for i in everything} == {setup.own.name} and len(everything) == 2
    assert f"/hook/{setup.own.name}" not in str(everything)  # redacted as for the global tokens
    pending = (
        await call(w, setup.tokens["read"], "GET", f"/v1/internal/pending-links/{setup.own.missing_recipe}")
    ).json()
    assert pending["orderIds"] == [setup.own.waiting_order["orderId"]]
    # Replays and re-drives run on the own tenant only: the global token's dry run sees both tenants.
    replay = {"topic": "orders", "since": "1h", "dryRun": True}
    mine = (await call(w, setup.tokens["operate"], "POST", "/v1/replays", replay)).json()
    every = (await call(w, setup.deployment.api_token, "POST", "/v1/replays", replay)).json()
    assert mine["matched"] == 2 and every["matched"] == 4, (mine, every)
    mine = (await call(w, setup.tokens["operate"], "POST", "/v1/redrives", {"dryRun": True})).json()
    every = (await call(w, setup.deployment.api_token, "POST", "/v1/redrives", {"dryRun": True})).json()
    found = [t["matched"] + t.get("alreadyDelivered", 0) for t in (mine, every)]
    assert found == [1, 2], (mine, every)


async def test_another_tenant_is_answered_as_if_it_did_not_exist(setup):
    nothing = unique("gone")
    for case in cases(setup):
        if case.other is None:
            continue
        for w in setup.workers:
            tokens = [setup.tokens["operate"]] + ([] if case.operate else [setup.tokens["read"]])
            for token in tokens:
                other = await call(w, token, case.method, case.other, case.other_body)
                missing = await call(
                    w,
                    token,
                    case.method,
                    case.other.replace(case.hidden, nothing),
                    hide(case.other_body, case.hidden, nothing),
                )
                assert other.status_code == case.other_status, (w.name, case.other, case.other_body, other.text)
                assert missing.status_code == other.status_code
                assert other.content.decode().replace(case.hidden, nothing) == missing.content.decode(), (
                    case.other,
                    other.text,
                    missing.text,
                )
    # The global token still sees the other tenant.
    r = await call(
        setup.workers[1], setup.deployment.api_token, "GET", f"/v1/orders/{setup.other.failed_order['orderId']}"
    )
    assert r.status_code == 200 and r.json()["tenant"] == setup.other.name


async def test_a_read_token_is_refused_on_operate_routes(setup):
    for case in cases(setup):
        if not case.operate:
            continue
        for w in setup.workers:
            r = await call(w, setup.tokens["read"], case.method, case.own, case.own_body)
            assert r.status_code == 403 and "operate" in r.json()["error"], (case.own, r.text)


async def test_a_revoked_token_is_refused_by_every_worker_within_seconds(setup):
    deployment = setup.deployment
    token_id, token = issue(deployment, setup.own.name, "operate")
    for w in setup.workers:

        async def works(w: Worker = w) -> bool:
            return (await call(w, token, "GET", "/v1/whoami")).status_code == 200

        await wait_for(works, 15, f"{w.name} to know the new token")
    listed = deployment.cli("tokens", "list", "--tenant", setup.own.name).stdout.splitlines()
    assert len(listed) == 3 and all(line.split("\t")[1] == setup.own.name for line in listed)
    assert all(t not in "\n".join(listed) for t in (token, *setup.tokens.values()))
    assert setup.own.name not in deployment.cli("tokens", "list", "--tenant", setup.other.name).stdout
    assert token_id in {line.split("\t")[0] for line in listed}
    assert deployment.cli("tokens", "revoke", token_id).stdout.strip() == f"revoked {token_id}"
    for w in setup.workers:

        async def refused(w: Worker = w) -> bool:
            return (await call(w, token, "GET", "/v1/whoami")).status_code == 401

        await wait_for(refused, 10, f"{w.name} to refuse the revoked token")
    for case in cases(setup):
        for w in setup.workers:
            r = await call(w, token, case.method, case.own, case.own_body)
            assert r.status_code == 401 and "token" in r.json()["error"], (w.name, case.own, r.text)
    assert token_id not in deployment.cli("tokens", "list").stdout
    # The tokens that were not revoked still work, and no token is ever written to a log.
    assert (await call(setup.workers[1], setup.tokens["read"], "GET", "/v1/whoami")).status_code == 200
    for w in setup.workers:
        text = w.log.read_text()
        assert all(t not in text for t in (token, *setup.tokens.values()))


def test_the_tokens_commands_refuse_bad_arguments(setup):
    deployment = setup.deployment
    for args, code, words in [
        (("tokens", "issue"), 2, "--tenant"),
        (("tokens", "issue", "--tenant", "Not_A_Tenant"), 1, "not a tenant name"),
        (("tokens", "issue", "--tenant", "acme", "--scope", "admin"), 2, "admin"),
        (("tokens", "list", "--tenant", "Bad Name"), 1, "not a tenant name"),
        (("tokens", "revoke", "tok-nothing"), 1, "no token 'tok-nothing'"),
        (("tokens", "revoke"), 2, "token_id"),
    ]:
        result = deployment.cli(*args, check=False)
        assert result.returncode == code and words in result.stderr, (args, result)
        assert not result.stdout.strip()


async def test_a_reconciliation_job_is_followed_from_either_worker_and_held_to_its_tenant(setup):
    deployment, workers, own, other = setup.deployment, setup.workers, setup.own, setup.other
    operate, read = setup.tokens["operate"], setup.tokens["read"]
    folder = deployment.workdir / "deliveries" / own.name
    ticket = next(folder.glob(f"*_ID_{own.failed_order['orderId']}_*_Ticket.pdf"))
    ticket.unlink()
    # The tenant token names no tenant: its own is checked.
    started = await start_job(workers[0].port, operate, {"orderId": own.failed_order["orderId"], "since": "1h"})
    ended = [await job_end(w.port, operate, started["poll"]) for w in workers]
    assert ended[0] == ended[1] and ended[0]["tenant"] == own.name, ended
    assert (ended[0]["result"]["missing"], ended[0]["result"]["resent"], ended[0]["result"]["notCheckable"]) == (
        1,
        1,
        1,
    )
    answered_by = set()
    for w in workers:
        async with api(w.port, read) as client:  # a read token may follow the job
            r = await client.get(started["poll"])
        assert r.status_code == 200 and r.json() == ended[0]
        answered_by.add(r.headers["X-Outbound-Answered-By"])
    assert len(answered_by) == 1  # one worker runs the job; the other forwarded the poll to it
    await wait_for(ticket.exists, 90, "the deleted file delivered again")
    # A start that reaches the other worker runs on the same one: the owner of the tenant's row.
    async with api(workers[1].port, operate) as client:
        r = await client.post("/v1/reconciliations", json={"since": "1h", "dryRun": True})
    assert r.status_code == 202 and {r.headers["X-Outbound-Answered-By"]} == answered_by, r.text
    assert (await job_end(workers[1].port, operate, r.json()["poll"]))["result"]["missing"] == 0

    # Another tenant's job is, to the tenant token, one that does not exist: the same 404, byte for byte.
    theirs = await start_job(workers[1].port, deployment.api_token, {"tenant": other.name, "dryRun": True})
    await job_end(workers[1].port, deployment.api_token, theirs["poll"])
    nothing = theirs["jobId"][:-12] + "0" * 12  # an id of the same worker and run that no job has
    for w in workers:
        for token in (operate, read):
            async with api(w.port, token) as client:
                hidden = await client.get(theirs["poll"])
                missing = await client.get(f"/v1/reconciliations/{nothing}")
            assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
            assert hidden.text.replace(theirs["jobId"], nothing) == missing.text
    # Naming another tenant or its integration: answered as for a tenant or integration nothing has.
    gone_tenant, gone_id = unique("gone"), unique("gone-")
    for w in workers:
        async with api(w.port, operate) as client:
            named = await client.post("/v1/reconciliations", json={"tenant": other.name})
            unknown = await client.post("/v1/reconciliations", json={"tenant": gone_tenant})
            assert named.status_code == unknown.status_code == 403 and named.text == unknown.text, named.text
            named = await client.post("/v1/reconciliations", json={"integrationId": other.hook["id"]})
            unknown = await client.post("/v1/reconciliations", json={"integrationId": gone_id})
            assert named.status_code == unknown.status_code == 404
            assert named.text.replace(other.hook["id"], gone_id) == unknown.text
        async with api(w.port, read) as client:
            r = await client.post("/v1/reconciliations", json={"dryRun": True})
            assert r.status_code == 403 and "operate" in r.json()["error"]

    # The worker that ran the job stops: the other answers that the job is lost, never a 500.
    runner = next(w for w in workers if answered_by == {f"http://127.0.0.1:{w.port}"})
    survivor = next(w for w in workers if w is not runner)
    runner.stop()

    async def lost() -> httpx.Response | None:
        async with api(survivor.port, operate) as client:
            r = await client.get(started["poll"])
        assert r.status_code in (410, 503), r.text  # 503 while the group has not yet seen it leave
        return r if r.status_code == 410 else None

    gone = await wait_for(lost, 90, "the stopped worker's job answered as lost")
    assert "the worker that ran it has stopped" in gone.json()["error"]

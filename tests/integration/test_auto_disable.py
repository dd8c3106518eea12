"""A receiver gone for good turns its integration off: one e-mail, later deliveries kept (failed for good,
not attempted), and after Enable a re-drive delivers them all. One worker of its own, with a small rule
(3 deliveries in a row failed for good, over any span) so that the count is seen in seconds."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import expect

from tests.deployments import Deployment, Worker, configure, new_deployment, worker_knows
from tests.events import order_event, recipe_event, unique
from tests.integration.test_operators_page import browser  # noqa: F401  (the module's Chromium)
from tests.integrations import hook_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def health(kafka, destinations) -> AsyncIterator[tuple[Deployment, Worker]]:
    deployment = new_deployment(
        kafka,
        **destinations.worker_env(),
        OUTBOUND_AUTO_DISABLE_AFTER_FAILURES="3",
        OUTBOUND_AUTO_DISABLE_AFTER_HOURS="0",
    )
    worker = await Worker(deployment, "health").start().ready()
    yield deployment, worker
    worker.stop(signal.SIGKILL)


async def send_orders(deployment: Deployment, tenant: str, count: int) -> list[dict[str, Any]]:
    recipe = recipe_event(tenant)
    orders = [order_event(tenant, [recipe["recipeId"]]) for _ in range(count)]
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", orders, "orderId")
    return orders


async def turned_off(worker: Worker, integration_id: str) -> dict[str, Any]:
    async def off() -> dict[str, Any] | None:
        doc = await worker_knows(worker, integration_id)
        return doc if not doc["enabled"] and doc.get("disabled") else None

    return await wait_for(off, 60, f"{integration_id} to be turned off")


async def a_hook(
    deployment: Deployment, worker: Worker, destinations, name: str, status: int
) -> tuple[str, dict[str, int], dict[str, Any]]:
    """A tenant's catch hook answering `status` until the test changes `answer["status"]`."""
    tenant = unique(name)
    answer = {"status": status}
    destinations.http.hook_responders[tenant] = lambda headers, seen: answer["status"]
    hook = hook_integration(destinations, tenant, successNotificationList="")
    await configure(deployment, [worker], hook)
    return tenant, answer, hook


def mails(destinations, tenant: str) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in destinations.smtp.inbox.to(f"alerts-{tenant}@ops.example")]


async def test_a_hook_answering_410_is_turned_off_at_once_and_enable_with_redrive_delivers_what_was_kept(
    health, destinations
):
    deployment, worker = health
    tenant, answer, hook = await a_hook(deployment, worker, destinations, "gone", 410)
    [first] = await send_orders(deployment, tenant, 1)

    off = await turned_off(worker, hook["id"])
    assert off["disabled"]["by"] == "service" and "HTTP 410" in off["disabled"]["reason"], off
    await wait_for(lambda: mails(destinations, tenant), 60, "the e-mail that it is turned off")
    [subject] = mails(destinations, tenant)
    assert subject == f"DISABLED: integration {hook['id']} of {tenant}"
    body = destinations.smtp.inbox.to(f"alerts-{tenant}@ops.example")[0].get_payload(decode=True).decode()
    assert f"outbound integrations enable {hook['id']}" in body and "outbound redrive" in body

    later = await send_orders(deployment, tenant, 2)
    kept = await deployment.wait_json(
        "deliveries-failed", lambda d: d["command"]["tenant"] == tenant and d.get("kept"), 2
    )
    assert {d["command"]["orderId"] for d in kept} == {o["orderId"] for o in later}
    assert {d["reason"] for d in kept} == {"integration disabled"}
    results = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d["error"] == "integration disabled", 2
    )
    assert {(r["outcome"], r["final"]) for r in results} == {("failed", True)}
    assert len(destinations.http.hook_requests[tenant]) == 1, "nothing attempted while it is off"
    await wait_for(lambda: deployment.committed_everything("deliveries-failed"), 60, "the failures handled")
    assert len(mails(destinations, tenant)) == 1, "one e-mail, none per kept delivery"
    async with worker.api() as api:
        metrics = (await api.get("/metrics")).text
    assert 'outbound_integrations_disabled_total{integration_type="zapier"} 1.0' in metrics

    answer["status"] = 200
    async with worker.api() as api:
        enabled = await api.post(f"/v1/integrations/{hook['id']}/enable")
        assert enabled.status_code == 200, enabled.text
        redrive = enabled.json()["redrive"]
        assert redrive == {"tenant": tenant, "integrationId": hook["id"], "since": off["disabled"]["failingSince"]}
        ran = await api.post("/v1/redrives", json=redrive)
        assert ran.status_code == 200 and ran.json()["published"] == 3, ran.text
    delivered = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d["outcome"] == "delivered", 3
    )
    assert {d["orderId"] for d in delivered} == {o["orderId"] for o in [first, *later]}
    known = await worker_knows(worker, hook["id"])
    assert known["enabled"] and not known.get("disabled")


async def test_three_failures_in_a_row_turn_it_off_and_the_cli_enables_and_redrives(health, destinations):
    deployment, worker = health
    tenant, answer, hook = await a_hook(deployment, worker, destinations, "broken", 404)
    await send_orders(deployment, tenant, 3)

    off = await turned_off(worker, hook["id"])
    assert off["disabled"]["reason"].startswith("3 deliveries in a row failed for good"), off
    assert "HTTP 404" in off["disabled"]["reason"]
    await wait_for(lambda: len(mails(destinations, tenant)) == 4, 60, "three failure e-mails and one that it is off")
    assert sorted(s.split(":")[0] for s in mails(destinations, tenant)) == ["DISABLED", "FAILED", "FAILED", "FAILED"]
    shown = orjson.loads(deployment.cli("integrations", "show", hook["id"]).stdout)
    assert shown["disabled"]["by"] == "service" and not shown["enabled"]

    [kept] = await send_orders(deployment, tenant, 1)
    await deployment.wait_json("deliveries-failed", lambda d: d["command"]["orderId"] == kept["orderId"], 1)
    assert len(destinations.http.hook_requests[tenant]) == 3

    answer["status"] = 200
    # Enabled and re-driven at once: the re-drive's deliveries already find it on, on every worker.
    run = deployment.cli("integrations", "enable", hook["id"], "--redrive")
    at = off["disabled"]["at"].replace("Z", "+00:00")  # as the API shows it; the CLI prints the topic's
    assert f"the service had turned it off at {at}: 3 deliveries in a row" in run.stdout, run.stdout
    # From the first of the three failures: those three and the one kept while it was off.
    assert "matched 4, published 4" in run.stdout, run.stdout
    await deployment.wait_json(
        "delivery-results", lambda d: d["orderId"] == kept["orderId"] and d["outcome"] == "delivered", 1
    )


async def test_enable_of_another_tenants_or_a_missing_integration_is_a_404_and_read_tokens_are_refused(health):
    _, worker = health
    async with worker.api() as api:
        missing = await api.post("/v1/integrations/no-such-integration/enable")
        assert missing.status_code == 404 and missing.json() == {"error": "no integration 'no-such-integration'"}
        bad = await api.post("/v1/integrations/no-such-integration/enable", json={"redrive": True})
        assert bad.status_code == 400 and "unknown field" in bad.json()["error"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as anonymous:
        assert (await anonymous.post("/v1/integrations/x/enable")).status_code == 401


async def test_the_page_shows_it_turned_off_and_enable_then_redrive_delivers(
    health,
    destinations,
    browser,  # noqa: F811  (the fixture imported above)
    tmp_path,
):
    deployment, worker = health
    tenant, answer, hook = await a_hook(deployment, worker, destinations, "pagegone", 410)
    [order] = await send_orders(deployment, tenant, 1)
    await turned_off(worker, hook["id"])
    answer["status"] = 200

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{worker.port}/ops/")
        await page.get_by_label("API token").fill(deployment.api_token)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Tenant").fill(tenant)
        await page.get_by_role("button", name="Show integrations").click()
        row = page.locator(f'#integrations tr[data-integration="{hook["id"]}"]')
        await expect(row.locator(".badge")).to_have_text("disabled")
        await expect(row).to_contain_text("by the service")
        await expect(row).to_contain_text("HTTP 410")
        await page.screenshot(path=str(tmp_path / "1-off.png"), full_page=True)

        await row.get_by_role("button", name=f"Enable {hook['id']}").click()
        result = page.locator("#enable-result")
        await expect(result).to_contain_text("1 failed delivery(ies) to re-drive")
        await expect(row.locator(".badge")).to_have_text("enabled")
        await page.get_by_role("button", name="Re-drive what failed while it was off").click()
        await expect(result).to_contain_text("Re-driven: 1 delivery(ies) sent again.")
        await page.screenshot(path=str(tmp_path / "2-enabled.png"), full_page=True)
    finally:
        await context.close()
    await deployment.wait_json(
        "delivery-results", lambda d: d["orderId"] == order["orderId"] and d["outcome"] == "delivered", 1
    )

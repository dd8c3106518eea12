"""The Review Recent Orders page end to end, in headless Chromium (the system's, driven by Playwright)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.deployments import configure
from tests.events import order_event, recipe_event, recipe_with_assets, unique
from tests.integrations import hook_integration, integration, local_integration
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # The system browser (scripts/bootstrap installs it): Playwright never downloads one here.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def shot(page: Page, folder, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_sign_in_find_an_order_and_trigger_its_failed_integration(
    deployment, worker, destinations, browser, tmp_path
):
    tenant = unique("page")
    hook = integration(
        tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, id=unique(f"{tenant}-hook-")
    )
    folder = local_integration(tenant, ["order.created"])
    await configure(deployment, [worker], hook)
    await configure(deployment, [worker], folder)
    destinations.http.hook_statuses[tenant] = [404]  # fails for good at once; the next call succeeds
    recipe, contents = recipe_with_assets(destinations, tenant)
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2, 90)

    async def both_shown() -> bool:
        async with worker.api() as api:
            r = await api.get(f"/v1/orders/{order['orderId']}")
        return r.status_code == 200 and len(r.json()["integrations"]) == 2

    await wait_for(both_shown, 60, "the order's two deliveries in its view")

    base = f"http://127.0.0.1:{worker.port}"
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        await page.goto(f"{base}/ops/")

        await page.get_by_label("API token").fill("not-the-token")
        await page.get_by_label("API token").press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("the token was not accepted")
        await shot(page, tmp_path, "1-wrong-token")

        await page.get_by_label("API token").fill(deployment.api_token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_text("Signed in: operate token")).to_be_visible()
        await page.get_by_label("Tenant").fill(tenant)
        await page.get_by_label("Look up by").select_option("number")
        await page.get_by_label("Value").fill(order["orderNumber"])
        await page.get_by_label("Value").press("Enter")
        detail = page.locator("#detail")
        await expect(detail.get_by_role("heading", name=f"Order {order['orderNumber']}")).to_be_visible()
        hook_block = detail.locator(".integration", has_text=hook["id"])
        await expect(hook_block.locator("h4 .badge")).to_have_text("failed")
        await expect(hook_block).to_contain_text("404")
        folder_block = detail.locator(".integration", has_text=folder["id"])
        await expect(folder_block.locator("h4 .badge")).to_have_text("delivered")
        # Each delivered file with its size and the start of its SHA-256, as the delivery result gave them.
        await folder_block.locator("details summary").first.click()
        ticket = contents[("Ticket", "pdf")]
        await expect(folder_block.locator("ul.files")).to_contain_text(
            f"sha256 {hashlib.sha256(ticket).hexdigest()[:12]}"
        )
        await shot(page, tmp_path, "2-order")

        await page.get_by_role("button", name="Preview").click()
        result = page.locator("#trigger-result")
        await expect(result).to_contain_text("1 delivery(ies) would be sent")
        await expect(result).to_contain_text(hook["id"])
        await shot(page, tmp_path, "3-preview")
        assert len(await deployment.read_json("deliveries", lambda d: d["tenant"] == tenant)) == 2

        await page.get_by_role("button", name="Trigger Integrations").click()
        await expect(result).to_contain_text("finished", timeout=90_000)
        await expect(result.locator(".badge")).to_have_text(["delivered"])
        await expect(hook_block.locator("h4 .badge")).to_have_text("delivered")
        await shot(page, tmp_path, "4-triggered")

        await page.get_by_role("button", name="Show recent orders").click()
        await expect(page.locator("#recent")).to_contain_text(order["orderNumber"])
        await expect(page.locator("#recent .badge").first).to_have_text("delivered")
        await shot(page, tmp_path, "5-recent")
    finally:
        await context.close()
    manual = await deployment.read_json("deliveries", lambda d: d["tenant"] == tenant and d["manual"])
    assert [d["integrationId"] for d in manual] == [hook["id"]]
    # Everything the page loaded came from the worker itself.
    assert requested and all(url.startswith(base) for url in requested), requested
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "1-wrong-token.png",
        "2-order.png",
        "3-preview.png",
        "4-triggered.png",
        "5-recent.png",
    ]


async def test_a_tenant_token_signs_in_to_its_tenant_fixed(deployment, worker, destinations, browser, tmp_path):
    tenant, other = unique("pagetenant"), unique("pageother")
    orders = {}
    for name in (tenant, other):
        await configure(deployment, [worker], local_integration(name, ["order.created"]))
        recipe, _ = recipe_with_assets(destinations, name)
        orders[name] = order_event(name, [recipe["recipeId"]])
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [orders[name]], "orderId")
    for name in (tenant, other):
        await deployment.wait_json("delivery-results", lambda d, name=name: d["tenant"] == name, 1, 90)
    issued = deployment.cli("tokens", "issue", "--tenant", tenant, "--scope", "read", "--note", "page test")
    token = issued.stdout.strip()

    async def known() -> bool:
        async with worker.api() as api:
            r = await api.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        return r.status_code == 200

    await wait_for(known, 30, "the worker to know the tenant token")

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{worker.port}/ops/")
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_text(f"Signed in: read token (look-ups only) for tenant {tenant}")).to_be_visible()
        await expect(page.get_by_label("Tenant")).to_have_value(tenant)
        await expect(page.get_by_label("Tenant")).not_to_be_editable()
        await expect(page.locator("#trigger")).to_be_hidden()
        await expect(page.locator("#check")).to_be_hidden()
        await page.get_by_label("Look up by").select_option("number")
        await page.get_by_label("Value").fill(orders[tenant]["orderNumber"])
        await page.get_by_label("Value").press("Enter")
        detail = page.locator("#detail")
        await expect(detail.get_by_role("heading", name=f"Order {orders[tenant]['orderNumber']}")).to_be_visible()
        await shot(page, tmp_path, "1-own-order")

        # The other tenant's order is not found, in the very words of an id nothing has.
        await page.get_by_label("Look up by").select_option("order")
        other_id = orders[other]["orderId"]
        await page.get_by_label("Value").fill(other_id)
        await page.get_by_label("Value").press("Enter")
        await expect(page.get_by_role("alert")).to_have_text(f"Not found: no order with orderId '{other_id}' is known")
        await shot(page, tmp_path, "2-other-tenant")

        await page.get_by_role("button", name="Show recent orders").click()
        await expect(page.locator("#recent")).to_contain_text(orders[tenant]["orderNumber"])
        await expect(page.locator("#recent")).not_to_contain_text(orders[other]["orderNumber"])
        await shot(page, tmp_path, "3-recent")
    finally:
        await context.close()


async def test_check_destination_reports_a_deleted_file_missing_and_sends_it_again(
    deployment, worker, destinations, browser, tmp_path
):
    tenant = unique("pagecheck")
    folder = local_integration(tenant, ["order.created"])
    hook = integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"})
    for config in (folder, hook):
        await configure(deployment, [worker], config)
    recipe, contents = recipe_with_assets(destinations, tenant)
    order = order_event(tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 2, 90)

    async def both_shown() -> bool:
        async with worker.api() as api:
            r = await api.get(f"/v1/orders/{order['orderId']}")
        return r.status_code == 200 and len(r.json()["integrations"]) == 2

    await wait_for(both_shown, 60, "the order's two deliveries in its view")
    name = f"{order['orderNumber']}_ID_{order['orderId']}_R_{recipe['recipeId']}_Ticket.pdf"
    held = deployment.workdir / "deliveries" / tenant / name
    held.unlink()  # someone cleaned the folder by hand

    context = await browser.new_context(viewport={"width": 1366, "height": 1100})
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{worker.port}/ops/")
        await page.get_by_label("API token").fill(deployment.api_token)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Tenant").fill(tenant)
        await page.get_by_label("Look up by").select_option("number")
        await page.get_by_label("Value").fill(order["orderNumber"])
        await page.get_by_label("Value").press("Enter")
        detail = page.locator("#detail")
        await expect(detail.get_by_role("heading", name=f"Order {order['orderNumber']}")).to_be_visible()
        result = page.locator("#check-result")

        await page.get_by_label("Check only (send nothing again)").check()
        await page.get_by_role("button", name="Check destination").click()
        await expect(result).to_contain_text("re-sent nothing (check only)", timeout=90_000)
        await expect(result).to_contain_text("Checked 2 delivery(ies), 6 file(s): missing 1, different 0")
        await expect(result.locator(".check-problems")).to_have_text(
            f"missing {name} at {folder['id']} — not re-sent (check only)"
        )
        await shot(page, tmp_path, "1-check-only")
        assert not held.exists()

        await page.get_by_label("Check only (send nothing again)").uncheck()
        await page.get_by_role("button", name="Check destination").click()
        await expect(result).to_contain_text("missing 1, different 0, re-sent 1, not checkable 1", timeout=90_000)
        figures = result.locator("table.check-figures")
        await expect(figures.locator("tr", has_text=folder["id"]).locator("td")).to_have_text(
            [folder["id"], "local", "1", "6", "1", "0", "1", "re-sent"]
        )
        await expect(figures.locator("tr", has_text=hook["id"]).locator(".badge")).to_have_text("not checkable")
        await expect(result.locator(".check-problems")).to_have_text(f"missing {name} at {folder['id']} — re-sent")
        # The order shows the delivery's new attempt once it has finished: delivered again.
        folder_block = detail.locator(".integration", has_text=folder["id"])
        await expect(folder_block.locator("ol.attempts li")).to_have_count(2, timeout=90_000)
        await expect(folder_block.locator("h4 .badge")).to_have_text("delivered")
        await shot(page, tmp_path, "2-re-sent")
    finally:
        await context.close()
    assert held.read_bytes() == contents[("Ticket", "pdf")]
    print(f"screenshots in {tmp_path}")


async def test_a_late_order_is_marked_late_in_its_detail_and_the_recent_list(
    deployment, worker, destinations, browser, tmp_path
):
    tenant = unique("pagelate")
    hook = hook_integration(destinations, tenant, deliverWithinMinutes=0.05)
    await configure(deployment, [worker], hook)
    never = recipe_event(tenant)  # never published: the order waits for it past its 3 s
    order = order_event(tenant, [never["recipeId"]], occurredAt=datetime.now(UTC).isoformat())
    await deployment.produce_json("orders", [order], "orderId")

    async def marked() -> bool:
        async with worker.api() as api:
            r = await api.get(f"/v1/orders/{order['orderId']}")
        return r.status_code == 200 and bool(r.json()["late"])

    await wait_for(marked, 60, "the order marked late")
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(f"http://127.0.0.1:{worker.port}/ops/")
        await page.get_by_label("API token").fill(deployment.api_token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_text("Signed in: operate token")).to_be_visible()
        await page.get_by_label("Tenant").fill(tenant)
        await page.get_by_label("Look up by").select_option("order")
        await page.get_by_label("Value").fill(order["orderId"])
        await page.get_by_label("Value").press("Enter")
        detail = page.locator("#detail")
        await expect(detail.get_by_role("heading", name=f"Order {order['orderNumber']}")).to_be_visible()
        await expect(detail.locator("#detail-summary .s-late")).to_have_text("late")
        late = detail.locator("ul.late li")
        await expect(late).to_have_count(1)
        await expect(late).to_contain_text(f"{hook['id']}: order.created due")
        await expect(late).to_contain_text("(within 0.05 min)")
        await expect(late.locator(".badge")).to_have_text(["waiting for recipe"])
        await shot(page, tmp_path, "1-late-order")
        await page.get_by_role("button", name="Show recent orders").click()
        row = page.locator("#recent tr", has_text=order["orderNumber"])
        await expect(row.locator(".s-late")).to_have_text("late")
        await shot(page, tmp_path, "2-recent")
    finally:
        await context.close()
    assert errors == []

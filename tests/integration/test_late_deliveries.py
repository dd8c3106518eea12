"""Late-delivery alerts: an integration's `deliverWithinMinutes` is a promise; an order event whose files
are not there in time is told to its failure list once, counted, and marked late on the API."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from service.catalog import changelog_name
from tests.deployments import Deployment, Worker, configure, new_deployment
from tests.events import order_event, recipe_event, unique
from tests.integrations import hook_integration
from tests.scrapes import scrape, value
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def placed_now(tenant: str, recipe_ids: list[str]) -> dict[str, Any]:
    """An order event that occurred just now (the examples' occurredAt is days ago: late at once)."""
    return order_event(tenant, recipe_ids, occurredAt=datetime.now(UTC).isoformat())


def late_mails(destinations, tenant: str) -> list[Any]:
    return [m for m in destinations.smtp.inbox.to(f"alerts-{tenant}@ops.example") if m["Subject"].startswith("LATE:")]


async def deadlines_removed(deployment: Deployment, event_ids: set[str]) -> dict[str, int] | None:
    """Once the deadline row of each of these events was written and then removed, as the table's
    changelog has it (latest value per key): how many records each event's rows cost; None before."""
    latest: dict[str, Any] = {}
    records: dict[str, int] = {}
    # A deployment's app id is its topic prefix + "app": its changelogs are "app-...".
    for record in await deployment.read(changelog_name("app", "delivery-deadlines")):
        key = orjson.loads(record.key)
        event_id = key.split("|")[1]
        if event_id in event_ids:
            latest[key] = record.value
            records[event_id] = records.get(event_id, 0) + 1
    done = set(records) == event_ids and all(v is None for v in latest.values())
    return records if done else None


async def order_view(worker: Worker, order_id: str) -> dict[str, Any]:
    async with worker.api() as api:
        r = await api.get(f"/v1/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def listed(worker: Worker, tenant: str, order_id: str) -> dict[str, Any] | None:
    async with worker.api() as api:
        r = await api.get(f"/v1/tenants/{tenant}/orders")
    return next((i for i in r.json()["items"] if i.get("orderId") == order_id), None)


async def test_an_order_waiting_for_its_recipe_past_the_limit_alerts_once_and_one_in_time_never(
    deployment, worker, destinations
):
    late_tenant, on_time_tenant = unique("late"), unique("ontime")
    # 0.05 minutes: three seconds. The one in time has twelve, so a busy machine does not make it late.
    late_hook = hook_integration(destinations, late_tenant, deliverWithinMinutes=0.05)
    on_time_hook = hook_integration(destinations, on_time_tenant, deliverWithinMinutes=0.2)
    for config in (late_hook, on_time_hook):
        await configure(deployment, [worker], config)
    before = await scrape(worker)
    never = recipe_event(late_tenant)  # never published: the order waits for it
    waiting = placed_now(late_tenant, [never["recipeId"]])
    recipe = recipe_event(on_time_tenant)
    on_time = placed_now(on_time_tenant, [recipe["recipeId"]])
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [waiting, on_time], "orderId")

    [mail] = await wait_for(lambda: late_mails(destinations, late_tenant), 60, "the late e-mail")
    assert " ".join(mail["Subject"].split()) == (
        f"LATE: order {waiting['orderNumber']} (order ID {waiting['orderId']}) to {late_hook['id']},"
        " not delivered within 0.05 minutes"
    )
    body = mail.get_payload(decode=True).decode()
    assert f"recipe {never['recipeId']}: waiting for recipe" in body
    assert waiting["customer"]["name"] not in body
    await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == on_time_tenant and d["outcome"] == "delivered", 1, 60
    )
    # Both deadlines passed and were removed (the one in time nine seconds after the late one's alert):
    # every sweep since has had the chance to tell anything twice.
    records = await wait_for(
        lambda: deadlines_removed(deployment, {waiting["eventId"], on_time["eventId"]}), 60, "both deadlines settled"
    )
    assert records == {waiting["eventId"]: 2, on_time["eventId"]: 2}, "a deadline costs its row and its removal"
    assert len(late_mails(destinations, late_tenant)) == 1
    assert late_mails(destinations, on_time_tenant) == []
    assert destinations.smtp.inbox.to(f"alerts-{on_time_tenant}@ops.example") == []

    after = await scrape(worker)

    def delta(integration: dict[str, Any]) -> float:
        labels = {"integration_type": "zapier", "integration_id": integration["id"]}
        return value(after, "outbound_late_deliveries_total", **labels) - value(
            before, "outbound_late_deliveries_total", **labels
        )

    assert (delta(late_hook), delta(on_time_hook)) == (1, 0)

    view = await wait_for(lambda: _late_view(worker, waiting["orderId"]), 30, "the order marked late")
    [mark] = view["late"]
    assert (mark["integrationId"], mark["eventType"], mark["withinMinutes"]) == (late_hook["id"], "order.created", 0.05)
    assert [(d["recipeId"], d["state"]) for d in mark["deliveries"]] == [(never["recipeId"], "waiting for recipe")]
    line = await wait_for(lambda: listed(worker, late_tenant, waiting["orderId"]), 30, "the order's line")
    assert line.get("late") is True
    assert (await order_view(worker, on_time["orderId"]))["late"] == []
    assert (await wait_for(lambda: listed(worker, on_time_tenant, on_time["orderId"]), 30, "line"))["late"] is False


async def _late_view(worker: Worker, order_id: str) -> dict[str, Any] | None:
    view = await order_view(worker, order_id)
    return view if view["late"] else None


async def test_a_delivery_failed_for_good_past_the_limit_alerts_once_across_a_restart(kafka, destinations):
    deployment = new_deployment(kafka, **destinations.worker_env())
    tenant, marker = unique("gone"), unique("marker")
    destinations.http.hook_statuses[tenant] = [400]  # refused: failed for good at the first attempt
    first = await Worker(deployment, "late-first").start().ready()
    hook = hook_integration(destinations, tenant, deliverWithinMinutes=0.05)
    recipe = recipe_event(tenant)
    order = placed_now(tenant, [recipe["recipeId"]])
    try:
        await configure(deployment, [first], hook)
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order], "orderId")
        [mail] = await wait_for(lambda: late_mails(destinations, tenant), 60, "the late e-mail")
        body = mail.get_payload(decode=True).decode()
        assert f"recipe {recipe['recipeId']}: failed, 1 attempt" in body and "last error: " in body
        failed = [
            m for m in destinations.smtp.inbox.to(f"alerts-{tenant}@ops.example") if m["Subject"].startswith("FAILED")
        ]
        assert len(failed) == 1, "the failure itself is told too, in its own e-mail"
        [mark] = (await wait_for(lambda: _late_view(first, order["orderId"]), 30, "the late mark"))["late"]
        assert [d["state"] for d in mark["deliveries"]] == ["failed"]
        await wait_for(lambda: deadlines_removed(deployment, {order["eventId"]}), 30, "the deadline settled")
    finally:
        first.stop(signal.SIGTERM)
    second = await Worker(deployment, "late-second", port=first.port).start().ready()
    try:
        # Another late order after the restart: once it is told, every sweep since the restart has run.
        marker_hook = hook_integration(destinations, marker, deliverWithinMinutes=0.05)
        await configure(deployment, [second], marker_hook)
        waiting = placed_now(marker, [recipe_event(marker)["recipeId"]])
        await deployment.produce_json("orders", [waiting], "orderId")
        await wait_for(lambda: late_mails(destinations, marker), 60, "the marker's late e-mail")
        await wait_for(lambda: deadlines_removed(deployment, {waiting["eventId"]}), 30, "the marker settled")
        assert len(late_mails(destinations, tenant)) == 1, "told once, restart or not"
        view = await order_view(second, order["orderId"])
        assert [m["integrationId"] for m in view["late"]] == [hook["id"]], "the mark outlives the restart"
    finally:
        second.stop()

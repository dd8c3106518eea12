"""The operators' view as pure decisions: folding commands and results, states, summaries, the tenant
list, and what a manual trigger selects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.contracts import Integration, OrderLink
from service.planning.commands import delivery_id
from service.planning.order_view import (
    activity_fold,
    delivery_state,
    fold_command,
    fold_order,
    fold_recipe_order,
    fold_result,
    fold_trigger,
    latest_by_pair,
    own_deliveries,
    remember,
    summary_word,
    tenant_entry,
    tenant_lines,
)
from service.planning.trigger_selection import failed_pairs, planned_deliveries, select_links
from service.planning.view_answers import answer, failures_since, legacy_status, recent_page, trigger_answer
from tests.integrations import ORDER_FEED
from tests.integrations import integration as configured

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def command(did: str, recipe: str = "r1", integration: str = "hook", created: float = 0, **extra: Any) -> dict:
    return {
        "deliveryId": did,
        "integrationId": integration,
        "integrationType": "zapier",
        "tenant": "acme",
        "eventType": "order.created",
        "eventId": "e1",
        "recipeId": recipe,
        "orderId": "o1",
        "orderNumber": "1022",
        "files": [{"kind": "ticket", "name": f"1022_ID_o1_R_{recipe}_Ticket.pdf", "mimeType": "application/pdf"}],
        "manual": False,
        "createdAt": at(created),
        **extra,
    }


def result(did: str, attempt: int, outcome: str, final: bool = True, recipe: str = "r1", **extra: Any) -> dict:
    return {
        "deliveryId": did,
        "integrationId": extra.pop("integration", "hook"),
        "integrationType": "zapier",
        "tenant": "acme",
        "eventType": "order.created",
        "recipeId": recipe,
        "orderId": "o1",
        "orderNumber": "1022",
        "attempt": attempt,
        "startedAt": at(attempt),
        "finishedAt": at(attempt + 0.5),
        "bytes": 10 if outcome == "delivered" else 0,
        "outcome": outcome,
        "error": "HTTP 500" if outcome == "failed" else None,
        "final": final,
        **extra,
    }


SUMMARY = {
    "tenant": "acme",
    "orderId": "o1",
    "orderNumber": "1022",
    "lineItems": [
        {"itemId": "i1", "recipeId": "r1", "itemQuantity": 1, "sku": None},
        {"itemId": "i2", "recipeId": "r2", "itemQuantity": 2, "sku": "CAP"},
    ],
    "lastEventType": "order.created",
    "lastEventId": "e1",
    "occurredAt": at(0),
    "cancelledAt": None,
}


def test_a_result_read_before_its_command_still_lands_in_one_entry():
    first = fold_command(fold_result(None, result("d1", 1, "failed", final=False)), command("d1"))
    second = fold_result(fold_command(None, command("d1")), result("d1", 1, "failed", final=False))
    assert first == second
    [entry] = first["deliveries"].values()
    assert entry["files"][0]["name"].endswith("Ticket.pdf") and entry["attempts"][0]["error"] == "HTTP 500"


@given(st.permutations([("c", 0), ("r", 1), ("r", 2), ("r", 3)]))
def test_folds_give_the_same_view_in_any_order(order):
    doc = None
    for what, n in order:
        if what == "c":
            doc = fold_command(doc, command("d1"))
        else:
            doc = fold_result(doc, result("d1", n, "delivered" if n == 3 else "failed", final=False))
    [entry] = doc["deliveries"].values()
    assert [a["attempt"] for a in entry["attempts"]] == [1, 2, 3] and delivery_state(entry) == "delivered"


def test_states():
    doc = fold_command(None, command("d1"))
    assert delivery_state(doc["deliveries"]["d1"]) == "queued"
    for attempt, outcome, final, state in (
        (1, "failed", False, "retrying"),
        (3, "failed", True, "failed"),
        (2, "superseded", True, "superseded"),
        (1, "skipped", True, "skipped"),
        (2, "delivered", True, "delivered"),
    ):
        one = fold_result(fold_command(None, command("d1")), result("d1", attempt, outcome, final))
        assert delivery_state(one["deliveries"]["d1"]) == state


def test_a_replayed_result_does_not_add_an_attempt():
    doc = fold_result(None, result("d1", 1, "delivered"))
    assert fold_result(doc, result("d1", 1, "delivered")) == doc


def test_file_sizes_come_from_results_that_carry_them():
    doc = fold_command(None, command("d1"))
    sized = fold_result(doc, result("d1", 1, "delivered", files=[{"name": "1022_ID_o1_R_r1_Ticket.pdf", "bytes": 7}]))
    assert sized["deliveries"]["d1"]["files"][0]["bytes"] == 7
    assert fold_result(doc, result("d1", 1, "delivered"))["deliveries"]["d1"]["files"][0]["bytes"] is None


def test_a_delivered_result_gives_each_file_its_sha256_and_adds_the_manifest():
    ticket = {"name": "1022_ID_o1_R_r1_Ticket.pdf", "bytes": 7, "sha256": "ab" * 32}
    manifest = {"name": "1022_ID_o1_R_r1_manifest.json", "bytes": 3, "sha256": "cd" * 32}
    doc = fold_result(fold_command(None, command("d1")), result("d1", 1, "delivered", files=[ticket, manifest]))
    files = doc["deliveries"]["d1"]["files"]
    assert [(f["name"], f["bytes"], f["sha256"], f["kind"]) for f in files] == [
        (ticket["name"], 7, "ab" * 32, "ticket"),
        (manifest["name"], 3, "cd" * 32, None),
    ]
    # A retry's command folded again keeps what the result measured; a trigger plans the recipe's files only.
    again = fold_command(doc, command("d1"))["deliveries"]["d1"]["files"]
    assert again[0]["sha256"] == "ab" * 32
    [planned] = planned_deliveries("t1", [link("r1")], [integration("hook")], doc)
    assert planned["files"] == [ticket["name"]]


def test_summary_word_worst_first():
    assert summary_word(["delivered", "failed", "retrying"], False) == "failed"
    assert summary_word(["delivered", "retrying"], True) == "retrying"
    assert summary_word(["delivered"], True) == "waiting"
    assert summary_word(["delivered", "queued"], False) == "waiting"
    assert summary_word(["delivered", "superseded"], False) == "delivered"
    assert summary_word(["superseded"], False) == "none"


def test_latest_delivery_per_recipe_and_integration_decides():
    doc = fold_result(fold_command(None, command("old", created=0)), result("old", 3, "failed"))
    doc = fold_result(fold_command(doc, command("new", created=5, manual=True)), result("new", 1, "delivered"))
    latest = latest_by_pair(own_deliveries(doc, "order", "o1"))
    assert [e["deliveryId"] for e in latest.values()] == ["new"]
    assert failed_pairs(doc, "order", "o1") == set()


def test_order_and_raw_feed_deliveries_sharing_a_key_stay_apart():
    raw = command("raw", recipe="same", orderId=None, orderNumber=None)
    doc = fold_command(fold_command(None, command("ord", recipe="r1", orderId="same")), raw)
    assert [e["deliveryId"] for e in own_deliveries(doc, "order", "same")] == ["ord"]
    assert [e["deliveryId"] for e in own_deliveries(doc, "recipe", "same")] == ["raw"]


def test_an_order_keeps_when_it_was_placed_and_that_it_was_cancelled():
    doc = fold_order(None, SUMMARY)
    doc = fold_order(doc, {**SUMMARY, "lastEventType": "order.cancelled", "occurredAt": at(9), "cancelledAt": at(9)})
    doc = fold_order(doc, {**SUMMARY, "lastEventType": "order.updated", "occurredAt": at(20)})
    assert doc["order"]["placedAt"] == at(0) and doc["order"]["cancelledAt"] == at(9)


def order_doc() -> dict:
    doc = fold_order(None, SUMMARY)
    doc = fold_result(fold_command(doc, command("d1", "r1", "hook")), result("d1", 1, "failed", recipe="r1"))
    return fold_result(
        fold_command(doc, command("d2", "r1", "folder")), result("d2", 1, "delivered", integration="folder")
    )


def test_tenant_entry_of_an_order_with_a_line_still_waiting():
    entry = tenant_entry(order_doc(), "order", "o1", expects_deliveries=True)
    assert entry is not None
    assert entry["summary"] == "failed" and entry["integrations"] == {"folder": "delivered", "hook": "failed"}
    assert entry["occurredAt"] == at(0) and entry["tenant"] == "acme" and entry["orderNumber"] == "1022"
    delivered = fold_result(order_doc(), result("d1", 2, "delivered"))
    assert tenant_entry(delivered, "order", "o1", expects_deliveries=True)["summary"] == "waiting"  # r2
    assert tenant_entry(delivered, "order", "o1", expects_deliveries=False)["summary"] == "delivered"
    assert tenant_entry({}, "order", "o1", True) is None


def test_the_answer_shows_lines_waiting_for_their_recipe_and_no_personal_data():
    body = answer(order_doc(), "order", "o1", waiting_for_recipe={"r2", "elsewhere"})
    assert body is not None
    assert [(line["recipeId"], line["state"]) for line in body["lines"]] == [("r1", None), ("r2", "waiting for recipe")]
    assert [(i["integrationId"], i["state"]) for i in body["integrations"]] == [
        ("folder", "delivered"),
        ("hook", "failed"),
    ]
    assert body["summary"] == "failed"
    assert answer(None, "order", "o1", set()) is None
    assert "customer" not in str(body)


def test_legacy_status_lines():
    [folder, hook] = legacy_status(order_doc(), "order", "o1")
    assert folder["status"] == "delivered" and hook["status"] == "failed after 1 attempt"
    assert hook["lastError"] == "HTTP 500" and hook["attempts"] == 1


def entry(i: int, summary: str = "delivered", kind: str = "order") -> dict:
    return {"kind": kind, "id": f"x{i}", "occurredAt": at(i), "updatedAt": at(i + 1), "summary": summary}


def test_the_recent_list_is_newest_first_bounded_and_updated_in_place():
    recent = None
    for i in [3, 1, 4, 2, 5]:
        recent = remember(recent, entry(i), limit=4)
    assert [e["id"] for e in recent["orders"]] == ["x5", "x4", "x3", "x2"]
    recent = remember(recent, entry(3, "failed"), limit=4)
    assert [e["summary"] for e in recent["orders"]] == ["delivered", "delivered", "failed", "delivered"]
    recent = remember(recent, entry(9, "failed", kind="recipe"), limit=4)
    assert len(recent["orders"]) == 4 and [e["id"] for e in recent["recipes"]] == ["x9"]


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 40)), max_size=60), st.integers(1, 12))
def test_the_recent_list_is_what_sorting_every_entry_would_give(changes: list[tuple[int, int]], limit: int):
    """Entries go in at their place without sorting the list: the same list as sorting it whole."""
    recent = None
    latest: dict[str, dict] = {}
    for i, minute in changes:
        changed = {"kind": "order", "id": f"x{i}", "occurredAt": at(minute), "summary": "delivered"}
        recent = remember(recent, changed, limit=limit)
        latest[changed["id"]] = changed
    if recent is None:
        return
    # What survives the cap depends on the order of changes; among the survivors the order is fixed.
    kept = [e["id"] for e in recent["orders"]]
    assert len(kept) == len(set(kept)) <= limit
    assert all(recent["orders"][k] == latest[kept[k]] for k in range(len(kept)))
    key = [(e["occurredAt"], e["id"]) for e in recent["orders"]]
    assert key == sorted(key, reverse=True)


def test_a_tenant_record_of_either_release_gives_its_lines():
    grouped = {"entries": [entry(1), entry(2, kind="recipe")]}
    assert tenant_lines(grouped) == [entry(1), entry(2, kind="recipe")]
    assert tenant_lines(entry(3)) == [entry(3)], "one line per record, as releases before the grouping sent"
    recent = remember(remember(None, *tenant_lines(grouped)), *tenant_lines(entry(3)))
    assert [e["id"] for e in recent["orders"]] == ["x3", "x1"] and [e["id"] for e in recent["recipes"]] == ["x2"]


def test_pages_and_the_failed_filter():
    recent = None
    for i in range(7):
        recent = remember(recent, entry(i, "failed" if i % 3 == 0 else "delivered"))
    page = recent_page(recent, failed_only=False, page=2, size=3)
    assert page["total"] == 7 and [e["id"] for e in page["items"]] == ["x3", "x2", "x1"]
    failed = recent_page(recent, failed_only=True, page=1, size=10)
    assert [e["id"] for e in failed["items"]] == ["x6", "x3", "x0"]
    assert recent_page(None, failed_only=False, page=1, size=5)["items"] == []


def test_failures_since_a_time_across_orders_and_recipes():
    recent = remember(remember(remember(None, entry(1, "failed")), entry(50, "failed", "recipe")), entry(60))
    assert [e["id"] for e in failures_since(recent, T0 + timedelta(minutes=10))] == ["x50"]
    assert [e["id"] for e in failures_since(recent, T0)] == ["x50", "x1"]


def link(recipe: str, integration: str | None = None) -> OrderLink:
    return OrderLink(
        eventId="t1",
        eventType="order.created",
        occurredAt=T0,
        tenant="acme",
        orderId="o1",
        orderNumber="1022",
        recipeId=recipe,
        manual=True,
        integrationId=integration,
    )


def integration(iid: str, events: tuple[str, ...] = ORDER_FEED, enabled: bool = True) -> Integration:
    return Integration.model_validate(configured("acme", "zapier", {}, events, id=iid, enabled=enabled))


def test_failed_only_selects_each_failed_recipe_and_integration_and_nothing_delivered():
    doc = order_doc()
    links = [link("r1"), link("r2")]
    assert select_links(links, "all", doc, "order", "o1") == links
    [only] = select_links(links, "failed-only", doc, "order", "o1")
    assert (only.recipeId, only.integrationId) == ("r1", "hook")
    assert select_links([link("r1", "folder")], "failed-only", doc, "order", "o1") == []
    assert select_links(links, "failed-only", None, "order", "o1") == []


def test_planned_deliveries_expand_links_to_integrations_with_their_ids_and_files():
    integrations = [integration("hook"), integration("folder"), integration("off", enabled=False)]
    integrations.append(integration("updates-only", events=("order.updated",)))
    planned = planned_deliveries("t1", [link("r1"), link("r2", "hook")], integrations, order_doc())
    assert [(p["recipeId"], p["integrationId"]) for p in planned] == [("r1", "folder"), ("r1", "hook"), ("r2", "hook")]
    assert planned[0]["deliveryId"] == delivery_id("t1", "r1", "folder")
    assert planned[0]["files"] == ["1022_ID_o1_R_r1_Ticket.pdf"] and planned[2]["files"] == []


def test_a_trigger_answer_follows_its_deliveries():
    plan = {"triggerId": "t1", "requestedAt": at(30), "orderId": "o1", "deliveries": [{"deliveryId": "m1"}]}
    doc = fold_trigger(order_doc(), plan)
    assert trigger_answer(doc, "t1")["deliveries"] == [{"deliveryId": "m1", "state": "queued"}]
    doc = fold_result(doc, result("m1", 1, "delivered"))
    assert trigger_answer(doc, "t1")["deliveries"][0]["state"] == "delivered"
    assert trigger_answer(doc, "other") is None
    assert answer(doc, "order", "o1", set())["triggers"][0]["triggerId"] == "t1"


def test_a_recipe_lists_its_orders_once_each():
    doc = fold_recipe_order(None, {"orderId": "o1", "orderNumber": "1022", "tenant": "acme"})
    doc = fold_recipe_order(doc, {"orderId": "o1", "orderNumber": "1022", "tenant": "acme"})
    body = answer(doc, "recipe", "r1", set())
    assert body is not None and body["orders"] == [{"orderId": "o1", "orderNumber": "1022"}]
    assert body["tenant"] == "acme" and body["summary"] == "none"


def test_a_tenant_row_keeps_1000_orders_but_fewer_raw_feed_recipes():
    recent = None
    for i in range(1100):
        recent = remember(recent, entry(i))
    for i in range(300):
        recent = remember(recent, entry(i, kind="recipe"))
    assert len(recent["orders"]) == 1000 and recent["orders"][0]["id"] == "x1099"
    assert len(recent["recipes"]) == 250


def test_every_shape_of_order_activity_is_folded_as_its_own_fold():
    """Today's records (a sweep-started attempt's result) and the shapes older releases sent (every
    order event, each order of a recipe, every trigger plan) are folded during an upgrade."""
    done = result("d1", 1, "delivered")
    plan = {"triggerId": "t1", "requestedAt": at(3), "orderId": "o1", "deliveries": []}
    ref = {"orderId": "o1", "orderNumber": "1022", "tenant": "acme"}
    raw_feed = {**plan, "orderId": None}
    cases = [
        ({"activity": "result", "result": done}, fold_result(None, done), "order"),
        ({"result": done}, fold_result(None, done), "order"),
        ({"activity": "order", "order": SUMMARY}, fold_order(None, SUMMARY), "order"),
        ({"activity": "recipe-order", "order": ref}, fold_recipe_order(None, ref), None),
        ({"activity": "trigger", "plan": plan}, fold_trigger(None, plan), "order"),
        ({"activity": "trigger", "plan": raw_feed}, fold_trigger(None, raw_feed), "recipe"),
    ]
    for record, expected, kind in cases:
        fold, listed_as = activity_fold(record)
        assert (fold(None), listed_as) == (expected, kind), record

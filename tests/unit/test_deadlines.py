"""Late deliveries: deadline rows and their order, what is late when the time is up, the one e-mail,
the mark in the order's view and its answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.contracts import Integration, OrderEvent
from service.planning.commands import delivery_id
from service.planning.deadlines import (
    EPOCH,
    TABLE_START,
    deadline_key,
    deadlines_for,
    due_keys,
    due_ms,
    late_alert,
    late_mark,
)
from service.planning.notifications import late_notification
from service.planning.order_view import activity_fold, fold_order, fold_result, tenant_entry
from service.planning.view_answers import answer

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def hook(minutes: float | None = 60, **fields: Any) -> Integration:
    return Integration.model_validate(
        {
            "id": "acme-hook",
            "tenant": "acme",
            "type": "zapier",
            "description": "Production hook",
            "enabled": True,
            "events": ["order.created", "order.cancelled"],
            "failureNotificationList": "alerts@acme.example",
            "settings": {},
            **({"deliverWithinMinutes": minutes} if minutes is not None else {}),
            **fields,
        }
    )


def order(recipes: tuple[str, ...] = ("r1", "r2"), type_: str = "order.created", at: datetime = T0) -> OrderEvent:
    return OrderEvent.model_validate(
        {
            "type": type_,
            "eventId": f"e-{type_}",
            "occurredAt": at.isoformat(),
            "tenant": "acme",
            "orderId": "o1",
            "orderNumber": "1022",
            "lineItems": [{"itemId": f"i{n}", "recipeId": r, "itemQuantity": 1} for n, r in enumerate(recipes)],
            "customer": {"name": "Ada Customer", "email": "ada@customer.example"},
        }
    )


def the_row(event: OrderEvent | None = None, integration: Integration | None = None) -> dict[str, Any]:
    [(_, row)] = deadlines_for(event or order(), [integration or hook()])
    return row


def view(event: OrderEvent | None = None, *results: dict[str, Any]) -> dict[str, Any]:
    doc = fold_order(None, {**_summary(event or order())})
    for result in results:
        doc = fold_result(doc, result)
    return doc


def _summary(event: OrderEvent) -> dict[str, Any]:
    from service.planning.links import order_summary

    return order_summary(event, None)


def result(recipe: str, outcome: str, finished: datetime, attempt: int = 1, final: bool = True, **fields: Any):
    return {
        "deliveryId": delivery_id("e-order.created", recipe, "acme-hook"),
        "integrationId": "acme-hook",
        "integrationType": "zapier",
        "tenant": "acme",
        "eventType": "order.created",
        "recipeId": recipe,
        "orderId": "o1",
        "orderNumber": "1022",
        "attempt": attempt,
        "startedAt": (finished - timedelta(seconds=1)).isoformat(),
        "finishedAt": finished.isoformat(),
        "outcome": outcome,
        "final": final,
        **fields,
    }


def test_only_integrations_that_promise_a_time_get_a_deadline():
    rows = deadlines_for(order(), [hook(60), hook(None, id="acme-other")])
    [(key, row)] = rows
    assert row["integrationId"] == "acme-hook" and row["recipeIds"] == ["r1", "r2"]
    assert row["dueAt"] == (T0 + timedelta(minutes=60)).isoformat()
    assert key == f"{due_ms(T0 + timedelta(minutes=60)):013d}|e-order.created|acme-hook"
    assert "Ada" not in json.dumps(row) and "customer" not in json.dumps(row), "no personal data in a row"
    assert deadlines_for(order(), [hook(None)]) == []
    assert deadlines_for(order(), [hook(60, enabled=False)]) == [], "one turned off: its failure list was told"


def test_a_fraction_of_a_minute_is_a_deadline_in_seconds():
    [(_, row)] = deadlines_for(order(), [hook(0.05)])
    assert datetime.fromisoformat(row["dueAt"]) - T0 == timedelta(seconds=3)


@given(st.lists(st.integers(min_value=0, max_value=10**13 - 1), min_size=1, max_size=30), st.integers(0, 10**13))
def test_the_sweep_reads_due_rows_in_time_order_and_stops_at_the_first_not_due(dues, now_ms):
    keys = sorted(
        json.dumps(deadline_key(EPOCH + timedelta(milliseconds=d), f"e{i}", "int")).encode() for i, d in enumerate(dues)
    )
    read: list[bytes] = []

    def reading():
        for k in keys:
            read.append(k)
            yield k

    found = list(due_keys(reading(), now_ms))
    assert [int(k[:13]) for k in found] == sorted(d for d in dues if d <= now_ms)
    assert len(read) <= len(found) + 1, "never reads past the first row not due"


def test_the_table_start_precedes_every_row_and_fausts_own_keys_stop_the_read():
    key = json.dumps(deadline_key(T0, "e1", "int")).encode()
    assert key > TABLE_START
    assert list(due_keys([key, b"__faust\x00offset__"], due_ms(T0))) == [deadline_key(T0, "e1", "int")]


def test_delivered_in_time_is_not_late():
    row = the_row()
    doc = view(None, result("r1", "delivered", T0 + timedelta(minutes=5)), result("r2", "delivered", T0))
    assert late_alert(row, doc, hook(), T0 + timedelta(hours=2)) is None


def test_waiting_for_the_recipe_past_the_limit_is_late():
    row = the_row()
    alert = late_alert(row, view(), hook(), T0 + timedelta(minutes=61))
    assert alert is not None
    assert [(d.recipeId, d.state, d.attempts, d.lastError) for d in alert.deliveries] == [
        ("r1", "waiting for recipe", 0, None),
        ("r2", "waiting for recipe", 0, None),
    ]


def test_each_state_past_the_limit_and_its_last_error():
    due = T0 + timedelta(minutes=60)
    row = the_row(order(("r1", "r2", "r3", "r4")))
    doc = view(
        order(("r1", "r2", "r3", "r4")),
        result("r1", "failed", T0 + timedelta(minutes=1), attempt=1, final=False, error="HTTP 500"),
        result("r2", "failed", T0 + timedelta(minutes=1), attempt=3, final=True, error="HTTP 410"),
        result("r3", "delivered", due + timedelta(seconds=1)),
        result("r4", "superseded", T0 + timedelta(minutes=2)),
    )
    alert = late_alert(row, doc, hook(), due + timedelta(seconds=5))
    assert alert is not None
    assert {d.recipeId: (d.state, d.lastError) for d in alert.deliveries} == {
        "r1": ("retrying", "HTTP 500"),
        "r2": ("failed", "HTTP 410"),
        "r3": ("delivered late", None),
    }


def test_a_cancelled_order_an_integration_gone_off_or_no_longer_promising_and_a_told_one_are_not_late():
    row = the_row()
    later = T0 + timedelta(hours=2)
    cancelled = fold_order(view(), _summary(order(type_="order.cancelled", at=T0 + timedelta(minutes=1))))
    assert late_alert(row, cancelled, hook(), later) is None
    assert late_alert(row, view(), None, later) is None
    assert late_alert(row, view(), hook(None), later) is None
    assert late_alert(row, view(), hook(enabled=False), later) is None
    alert = late_alert(row, view(), hook(), later)
    assert alert is not None
    fold, kind = activity_fold({"activity": "late", "late": late_mark(alert)})
    assert kind == "order"
    assert late_alert(row, fold(view()), hook(), later) is None, "told once"


def test_the_e_mail_names_the_order_the_limit_each_state_and_the_last_error():
    row = the_row()
    doc = view(None, result("r1", "failed", T0 + timedelta(minutes=1), final=True, error="HTTP 410"))
    alert = late_alert(row, doc, hook(), T0 + timedelta(hours=1, seconds=3))
    assert alert is not None
    mail = late_notification(alert)
    assert mail is not None
    assert mail["kind"] == "late" and mail["to"] == ["alerts@acme.example"]
    assert mail["subject"] == "LATE: order 1022 (order ID o1) to acme-hook, not delivered within 60 minutes"
    body = mail["body"]
    for text in ("recipe r1: failed, 1 attempt", "last error: HTTP 410", "recipe r2: waiting for recipe", "o1"):
        assert text in body
    assert "Ada" not in body
    silent = late_alert(row, doc, hook(failureNotificationList=""), T0 + timedelta(hours=2))
    assert silent is not None and late_notification(silent) is None, "no list, no e-mail (still counted and marked)"


def test_the_view_answers_and_the_tenant_line_mark_the_order_late():
    row = the_row()
    alert = late_alert(row, view(), hook(), T0 + timedelta(hours=2))
    assert alert is not None
    fold, _ = activity_fold({"activity": "late", "late": late_mark(alert)})
    doc = fold(view())
    body = answer(doc, "order", "o1", set())
    assert body is not None
    [mark] = body["late"]
    assert (mark["integrationId"], mark["eventType"], mark["withinMinutes"]) == ("acme-hook", "order.created", 60)
    assert [d["state"] for d in mark["deliveries"]] == ["waiting for recipe", "waiting for recipe"]
    assert (tenant_entry(doc, "order", "o1", True) or {}).get("late") is True
    on_time = view()
    assert "late" not in (tenant_entry(on_time, "order", "o1", True) or {}), "lines of orders on time are as before"
    assert (answer(on_time, "order", "o1", set()) or {})["late"] == []

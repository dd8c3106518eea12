"""When the service turns an integration off: the count of deliveries failed for good in a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.contracts import Integration
from service.planning.health import (
    Report,
    disabled_config,
    disabled_notification,
    enabled_config,
    fold_report,
    kept_while_disabled,
    parse_report,
    report_record,
)
from service.planning.routing import route

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
RULE = {"failures_to_disable": 3, "span": timedelta(hours=2)}


def fold_all(reports, row=None, **rule):
    decisions = []
    for report in reports:
        row, decision = fold_report(row, report, **(rule or RULE))
        decisions.append(decision)
    return row, decisions


def failed(minutes: float, error: str = "S3: NoSuchBucket") -> Report:
    return Report("failed", T0 + timedelta(minutes=minutes), error)


def test_n_failures_in_a_row_over_the_span_turn_it_off_once():
    row, decisions = fold_all([failed(0), failed(60), failed(121), failed(130)])
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None and "3 deliveries in a row failed for good over 2.0 h" in decisions[2].reason
    assert "NoSuchBucket" in decisions[2].reason
    assert decisions[3] is None, "once off, nothing more is decided"
    assert row["disabledAt"] == (T0 + timedelta(minutes=121)).isoformat()
    assert decisions[2].failing_since == T0, "the re-drive starts at the run's first failure"


def test_enough_failures_in_too_short_a_time_do_not():
    _, decisions = fold_all([failed(m) for m in range(10)])
    assert decisions == [None] * 10


def test_a_success_between_failures_starts_the_count_over():
    reports = [failed(0), failed(60), Report("delivered", T0 + timedelta(minutes=61)), failed(121), failed(200)]
    row, decisions = fold_all(reports)
    assert decisions == [None] * 5 and row["streak"] == 2


def test_a_success_reported_late_still_ends_the_run_before_it():
    # Two workers: the success happened between the failures but its report came last.
    row, _ = fold_all([failed(0), failed(60), Report("delivered", T0 + timedelta(minutes=90))])
    assert row["streak"] == 0
    row, decisions = fold_all([failed(121), failed(200)], row)
    assert decisions == [None, None], "the failures before the success no longer count"


def test_a_failure_reported_after_a_later_success_does_not_count():
    row, _ = fold_all([Report("delivered", T0 + timedelta(minutes=500)), failed(10), failed(20), failed(300)])
    assert not row.get("streak") and "disabledAt" not in row


def test_gone_turns_it_off_at_once_and_enabled_starts_over():
    row, [decision] = fold_all([Report("gone", T0, "Zapier: the hook is gone (HTTP 410)")])
    assert decision is not None and decision.reason.startswith("the receiver is gone: Zapier")
    row, decisions = fold_all([failed(1), failed(200), failed(300)], row)
    assert decisions == [None, None, None], "off: nothing counts"
    row, _ = fold_all([Report("enabled", T0 + timedelta(minutes=400))], row)
    assert "disabledAt" not in row and not row.get("streak")
    _, [again] = fold_all([Report("gone", T0 + timedelta(minutes=401))], row)
    assert again is not None, "enabled again, a 410 turns it off again"


def test_the_re_drive_starts_at_the_millisecond_kafka_gives_the_first_failure():
    at = T0.replace(microsecond=123456)
    _, [decision] = fold_all([Report("gone", at, "HTTP 410")])
    doc = disabled_config(hook().model_dump(mode="json"), decision)
    assert doc["disabled"]["failingSince"] == T0.replace(microsecond=123000).isoformat()


def test_reports_round_trip_and_malformed_ones_are_refused():
    record = report_record("failed", T0, "x" * 1000)
    assert parse_report(record) == Report("failed", T0, "x" * 300)
    assert parse_report({"kind": "exploded", "at": T0.isoformat()}) is None
    assert parse_report({"kind": "failed", "at": "yesterday"}) is None
    assert parse_report({"kind": "failed", "at": "2026-12-01T08:00:00"}) is None, "a time needs its zone"
    assert parse_report(["failed"]) is None


def hook(**extra) -> Integration:
    doc = {
        "id": "acme-hook",
        "tenant": "acme",
        "type": "zapier",
        "enabled": True,
        "events": ["order.created"],
        "failureNotificationList": "ops@acme.example",
        "settings": {"hook-url": "fernet:x"},
        **extra,
    }
    return Integration.model_validate(doc)


def test_turned_off_by_the_service_it_is_still_routed_and_kept_turned_on_it_loses_the_record():
    _, [decision] = fold_all([Report("gone", T0, "HTTP 410")])
    doc = disabled_config(hook().model_dump(mode="json"), decision)
    off = Integration.model_validate(doc)
    assert not off.enabled and off.disabled is not None and off.disabled.by == "service"
    assert kept_while_disabled(off)
    assert route("order.created", "acme", [off]) == [off], "its deliveries are kept, not dropped"
    by_operator = hook(enabled=False)
    assert not kept_while_disabled(by_operator) and route("order.created", "acme", [by_operator]) == []
    on = Integration.model_validate(enabled_config(doc))
    assert on.enabled and on.disabled is None


def test_the_one_e_mail_says_why_and_how_to_turn_it_on():
    _, [decision] = fold_all([Report("gone", T0, "Zapier: the hook is gone (HTTP 410)")])
    notice = disabled_notification(hook(), decision)
    assert notice is not None and notice["to"] == ["ops@acme.example"] and notice["kind"] == "integration-disabled"
    assert notice["subject"] == "DISABLED: integration acme-hook of acme"
    assert "outbound integrations enable acme-hook" in notice["body"]
    assert f"outbound redrive --tenant acme --integration acme-hook --since {T0.isoformat()}" in notice["body"]
    assert "HTTP 410" in notice["body"]
    assert disabled_notification(hook(failureNotificationList=""), decision) is None

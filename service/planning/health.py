"""An integration's health: when a receiver gone for good turns its integration off, and what that says.

Every delivery that fails for good (and, now and then, one that succeeds) is reported on
`integration-health`, keyed by integration id, so that one owner counts an integration's failures in a
row whatever worker delivered them. `fold_report` is that count; `disabled_config` and
`disabled_notification` are what the owner publishes when the count (or a 410 Gone) says stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from service.contracts import Integration
from service.planning.payloads import header_text
from service.validation import split_addresses

ReportKind = Literal["failed", "gone", "delivered", "enabled"]
REPORT_KINDS: tuple[str, ...] = ("failed", "gone", "delivered", "enabled")

# The error a delivery of a disabled integration is recorded with: kept, failed for good, re-drivable.
DISABLED_ERROR = "integration disabled"


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    at: datetime
    error: str = ""


@dataclass(frozen=True)
class Disable:
    """Turn the integration off: `reason` goes on its configuration and in the one e-mail; `failing_since`
    is the first failure of the run that did it, where the re-drive of what it kept starts."""

    reason: str
    at: datetime
    failing_since: datetime


def report_record(kind: ReportKind, at: datetime, error: str = "") -> dict[str, Any]:
    return {"kind": kind, "at": at.isoformat(), "error": error[:300]}


def parse_report(doc: Any) -> Report | None:
    """None for anything that is not a report (parked by the caller)."""
    if not isinstance(doc, dict) or doc.get("kind") not in REPORT_KINDS:
        return None
    try:
        at = datetime.fromisoformat(str(doc["at"]))
    except (KeyError, ValueError):
        return None
    if at.tzinfo is None:
        return None
    return Report(kind=doc["kind"], at=at, error=str(doc.get("error") or ""))


def _when(row: dict[str, Any], name: str) -> datetime | None:
    value = row.get(name)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def fold_report(
    row: dict[str, Any] | None, report: Report, *, failures_to_disable: int, span: timedelta
) -> tuple[dict[str, Any], Disable | None]:
    """The integration's row after one report, and whether to disable it now.

    A failure counts unless a success was seen after it: reports of different workers arrive in any
    order, so the row keeps times, not just a count. Once disabled, nothing counts until the
    integration is enabled again (an `enabled` report starts over)."""
    row = dict(row or {})
    if report.kind == "enabled":
        return {"lastSuccessAt": row.get("lastSuccessAt")}, None
    if row.get("disabledAt"):
        return row, None
    last_success = _when(row, "lastSuccessAt")
    if report.kind == "delivered":
        if last_success is None or report.at > last_success:
            row["lastSuccessAt"] = report.at.isoformat()
            last_failed = _when(row, "lastFailedAt")
            if last_failed is None or last_failed <= report.at:
                row.update(streak=0, since=None)
            else:
                # Some of the streak came after this success: keep only what surely did (the last one).
                row.update(streak=1, since=row["lastFailedAt"])
        return row, None
    if last_success is not None and report.at <= last_success:
        return row, None  # a success came after it: it is not part of a run of failures
    since = _when(row, "since")
    row["streak"] = int(row.get("streak") or 0) + 1
    row["since"] = min(since, report.at).isoformat() if since else report.at.isoformat()
    last_failed = _when(row, "lastFailedAt")
    row["lastFailedAt"] = max(last_failed, report.at).isoformat() if last_failed else report.at.isoformat()
    row["lastError"] = report.error
    decision = _disable(row, report, failures_to_disable=failures_to_disable, span=span)
    if decision is not None:
        row["disabledAt"] = decision.at.isoformat()
    return row, decision


def _disable(row: dict[str, Any], report: Report, *, failures_to_disable: int, span: timedelta) -> Disable | None:
    if report.kind == "gone":
        reason = f"the receiver is gone: {report.error}" if report.error else "the receiver is gone"
        return Disable(reason=reason, at=report.at, failing_since=report.at)
    streak = int(row["streak"])
    first, last = datetime.fromisoformat(row["since"]), datetime.fromisoformat(row["lastFailedAt"])
    if streak >= failures_to_disable and last - first >= span:
        hours = (last - first).total_seconds() / 3600
        return Disable(
            reason=f"{streak} deliveries in a row failed for good over {hours:.1f} h; the last: {report.error}",
            at=report.at,
            failing_since=first,
        )
    return None


def to_the_millisecond(at: datetime) -> datetime:
    """Down to Kafka's message time: a failure recorded at .123456 is on its topic at .123, and a window
    starting at .123456 would leave it out."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def disabled_config(doc: dict[str, Any], decision: Disable) -> dict[str, Any]:
    """The integration's configuration as published when the service turns it off: when and why."""
    return {
        **doc,
        "enabled": False,
        "disabled": {
            "at": decision.at.isoformat(),
            "reason": decision.reason,
            "by": "service",
            "failingSince": to_the_millisecond(decision.failing_since).isoformat(),
        },
    }


def operator_disabled_config(doc: dict[str, Any]) -> dict[str, Any]:
    """Turned off by an operator: not routed to until enabled (nothing is kept for it)."""
    return {**{k: v for k, v in doc.items() if k != "disabled"}, "enabled": False}


def enabled_config(doc: dict[str, Any]) -> dict[str, Any]:
    """Enabled again, the record of the last disabling gone."""
    return {**{k: v for k, v in doc.items() if k != "disabled"}, "enabled": True}


def kept_while_disabled(integration: Integration) -> bool:
    """Turned off by the service: its deliveries are still made and kept, failed for good, for a
    re-drive once it is enabled (one turned off by an operator takes nothing, as always)."""
    return not integration.enabled and integration.disabled is not None and integration.disabled.by == "service"


def disabled_notification(integration: Integration, decision: Disable) -> dict[str, Any] | None:
    """The one e-mail to the failure list: what happened, what is kept, how to turn it on again."""
    recipients = split_addresses(integration.failureNotificationList)
    if not recipients:
        return None
    since = to_the_millisecond(decision.failing_since).isoformat()
    body = "\n".join(
        [
            f"The integration {integration.id} ({integration.type}, tenant {integration.tenant}) was turned off",
            f"at {decision.at.isoformat()}: {decision.reason}.",
            "",
            "Its deliveries are not attempted while it is off. Nothing is lost: each is recorded as failed",
            f"for good with the reason '{DISABLED_ERROR}', and no further e-mail is sent for them.",
            "",
            "After fixing the receiver, turn the integration on again (Review Recent Orders, Integrations,",
            "Enable; or run the first command) and deliver what failed since it began failing (the second):",
            f"  outbound integrations enable {integration.id}",
            f"  outbound redrive --tenant {integration.tenant} --integration {integration.id} --since {since}",
        ]
    )
    return {
        "kind": "integration-disabled",
        "to": recipients,
        "subject": header_text(f"DISABLED: integration {integration.id} of {integration.tenant}"),
        "body": body,
        "integrationId": integration.id,
    }

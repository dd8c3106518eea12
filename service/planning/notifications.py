"""The notification e-mails, in plain language for the people who run an integration.

They name the integration, the order or recipe, and what went wrong; never a secret, never
customer data (commands carry none).
"""

from __future__ import annotations

from typing import Any

from service.contracts import DeliveryCommand, DeliveryResult, Integration
from service.planning.deadlines import LateAlert
from service.planning.payloads import header_text
from service.planning.preflight import upstream_advice
from service.validation import split_addresses


def _subject_of(command: DeliveryCommand) -> str:
    if command.orderId is not None:
        return f"order {command.orderNumber} (order ID {command.orderId}, recipe {command.recipeId})"
    return f"recipe {command.recipeId}"


def _integration_line(integration: Integration) -> str:
    described = f" — {integration.description}" if integration.description else ""
    return f"Integration: {integration.id} ({integration.type}){described}"


def success_notification(
    command: DeliveryCommand, integration: Integration, result: DeliveryResult
) -> dict[str, Any] | None:
    """None when nobody is to be told: e-mail integrations send none (no duplicate e-mails)."""
    recipients = split_addresses(integration.successNotificationList)
    if integration.type == "email" or not recipients:
        return None
    attempts = "" if result.attempt == 1 else f" after {result.attempt} attempts"
    body = "\n".join(
        [
            f"The files of {_subject_of(command)} were delivered{attempts}.",
            "",
            _integration_line(integration),
            f"Event: {command.eventType}",
            f"Files: {len(command.files)} plus the manifest",
            f"Finished: {result.finishedAt.isoformat()}",
            f"Delivery ID: {command.deliveryId}",
        ]
    )
    return {
        "kind": "success",
        "to": recipients,
        "subject": header_text(f"Delivered: {_subject_of(command)} to {integration.id}"),
        "body": body,
        "deliveryId": command.deliveryId,
    }


def failure_notification(
    command: DeliveryCommand, integration: Integration | None, reason: str
) -> dict[str, Any] | None:
    recipients = split_addresses(integration.failureNotificationList) if integration else []
    if not recipients:
        return None
    assert integration is not None
    attempts = [f"  - attempt {e.attempt} at {e.at.isoformat()}: {e.error}" for e in command.errors]
    target = f"order number {command.orderNumber}" if command.orderId is not None else f"recipe ID {command.recipeId}"
    option = f"--order-id {command.orderId}" if command.orderId is not None else f"--recipe-id {command.recipeId}"
    body = "\n".join(
        [
            f"The files of {_subject_of(command)} could NOT be delivered: {reason}.",
            "",
            _integration_line(integration),
            f"Event: {command.eventType}",
            f"Delivery ID: {command.deliveryId}",
            "",
            "What went wrong:",
            *attempts,
            "",
            *_fix_upstream(command),
            "After fixing the cause, trigger the integration again: open Review Recent Orders, find",
            f"{target} and click Trigger Integrations, or run:",
            f"  outbound trigger --tenant {command.tenant} {option} --integration {integration.id}",
        ]
    )
    return {
        "kind": "failure",
        "to": recipients,
        "subject": header_text(f"FAILED: {_subject_of(command)} to {integration.id}"),
        "body": body,
        "deliveryId": command.deliveryId,
    }


def _fix_upstream(command: DeliveryCommand) -> list[str]:
    """A file that failed its pre-flight check is fixed where it comes from, not at the destination."""
    advice = upstream_advice(command.errors[-1].error) if command.errors else None
    return ["What to fix upstream:", *(f"  {line}" for line in advice), ""] if advice else []


def late_notification(alert: LateAlert) -> dict[str, Any] | None:
    """The one e-mail for an (order event, integration) whose files were not there in time, to the
    failure list: each recipe's delivery as it stands and its last error."""
    integration, row = alert.integration, alert.row
    recipients = split_addresses(integration.failureNotificationList)
    if not recipients:
        return None
    subject = f"order {row['orderNumber']} (order ID {row['orderId']})"
    minutes = f"{row['withinMinutes']:g} minute{'' if row['withinMinutes'] == 1 else 's'}"
    lines = []
    for d in alert.deliveries:
        attempts = f", {d.attempts} attempt{'' if d.attempts == 1 else 's'}" if d.attempts else ""
        lines.append(f"  - recipe {d.recipeId}: {d.state}{attempts}")
        if d.lastError:
            lines.append(f"    last error: {d.lastError}")
    body = "\n".join(
        [
            f"The files of {subject} were NOT delivered within {minutes} of the order event.",
            "",
            _integration_line(integration),
            f"Event: {row['eventType']} at {row['occurredAt']}",
            f"Due by: {row['dueAt']}",
            f"Checked: {alert.checkedAt.isoformat()}",
            "",
            "Each delivery when the time was up:",
            *lines,
            "",
            "This is the only notice about this order event and integration. A delivery still retrying or",
            "waiting for its recipe goes on by itself; one that failed for good tells the failure list too.",
            f"Open Review Recent Orders and find order number {row['orderNumber']}, or run:",
            f"  outbound status --order-id {row['orderId']}",
        ]
    )
    return {
        "kind": "late",
        "to": recipients,
        "subject": header_text(f"LATE: {subject} to {integration.id}, not delivered within {minutes}"),
        "body": body,
        "deliveryId": alert.deliveries[0].deliveryId,
    }

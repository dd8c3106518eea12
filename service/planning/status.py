"""The delivery status operators see: per order (or raw-feed recipe), each integration's latest state."""

from __future__ import annotations

from typing import Any

from service.contracts import DeliveryResult


def status_text(result: DeliveryResult) -> str:
    return describe(result.outcome, result.attempt, result.final)


def describe(outcome: str, attempt: int, final: bool) -> str:
    """One attempt's outcome in the words operators read ("retrying after 1 attempt")."""
    attempts = f"{attempt} attempt{'s' if attempt != 1 else ''}"
    if outcome == "delivered":
        return "delivered" if attempt == 1 else f"delivered after {attempts}"
    if outcome == "superseded":
        return "dropped: the order was cancelled"
    if outcome == "skipped":
        return "skipped: the integration is deleted or disabled"
    return f"failed after {attempts}" if final else f"retrying after {attempts}"


def status_entry_key(result: DeliveryResult) -> str:
    return f"{result.recipeId}|{result.integrationId}"


def updated_status(current: dict[str, Any] | None, result: DeliveryResult) -> dict[str, Any]:
    """Fold one attempt's result into the status of its order or raw-feed recipe."""
    status = dict(current or {})
    previous = status.get(status_entry_key(result)) or {}
    last_error = result.error if result.outcome == "failed" else previous.get("lastError")
    status[status_entry_key(result)] = {
        "integrationId": result.integrationId,
        "integrationType": result.integrationType,
        "recipeId": result.recipeId,
        "orderId": result.orderId,
        "orderNumber": result.orderNumber,
        "eventType": result.eventType,
        "deliveryId": result.deliveryId,
        "outcome": result.outcome,
        "final": result.final,
        "status": status_text(result),
        "attempts": result.attempt,
        "lastError": last_error,
        "updatedAt": result.finishedAt.isoformat(),
    }
    return status

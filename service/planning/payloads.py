"""What is sent where the destination gets data rather than files: the Zapier catch-hook body,
the manifest, and the e-mail subject."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from service.contracts import DeliveryCommand


def zapier_payload(command: DeliveryCommand) -> dict[str, Any]:
    """The seed's format: links, not files; order fields for orders, recipeId for the raw feed."""
    head: dict[str, Any] = (
        {"orderId": command.orderId, "orderNumber": command.orderNumber}
        if command.orderId is not None
        else {"recipeId": command.recipeId}
    )
    files = [{"name": f.name, "mimeType": f.mimeType, "url": f.url} for f in command.files]
    return {**head, "eventType": command.eventType, "files": files}


def manifest(command: DeliveryCommand, files: list[tuple[str, str, int, str]]) -> dict[str, Any]:
    """Every delivered file with its size and SHA-256, so a receiver can check it got the whole recipe."""
    return {
        "deliveryId": command.deliveryId,
        "eventType": command.eventType,
        "recipeId": command.recipeId,
        "orderId": command.orderId,
        "orderNumber": command.orderNumber,
        "files": [{"name": n, "mimeType": m, "size": s, "sha256": h} for n, m, s, h in files],
    }


def email_subject(prefix: str, command: DeliveryCommand) -> str:
    what = (
        f"Order {command.orderNumber} (ID {command.orderId}), recipe {command.recipeId}"
        if command.orderId is not None
        else f"Recipe {command.recipeId}"
    )
    event = {"order.cancelled": " CANCELLED", "order.updated": " updated"}.get(command.eventType, "")
    return " ".join(part for part in (prefix.strip(), f"{what}{event}") if part)


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

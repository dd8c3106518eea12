"""What is sent where the destination gets data rather than files: the Zapier catch-hook body,
the manifest, and the e-mail subject."""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
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
    return header_text(" ".join(part for part in (prefix.strip(), f"{what}{event}") if part))


MAX_HEADER_CHARS = 900


def header_text(text: str) -> str:
    """One line for a mail header: every control and line-break character (CR, LF, U+0085, U+2028,
    U+2029, ...) becomes a space, so no value can start a header of its own or make the mail library
    refuse the message; bounded, as a subject must be."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return " ".join(cleaned.split())[:MAX_HEADER_CHARS]


def email_too_large(size: int, limit: int) -> str:
    mib = 1024**2
    return (
        f"e-mail: the files are {size / mib:.1f} MiB or more, over the {limit / mib:.0f} MiB limit for e-mail "
        "deliveries; large files go better by SFTP or S3"
    )


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

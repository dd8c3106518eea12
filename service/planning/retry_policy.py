"""When a failed delivery is tried again, and when it is given up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from service.contracts import DeliveryCommand


@dataclass(frozen=True)
class RetryAt:
    due: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str


def next_step(
    attempt: int,
    *,
    max_attempts: int,
    delays: list[float],
    permanent: bool,
    retry_after: float | None,
    now: datetime,
    retry_after_cap: float = 3600.0,
) -> RetryAt | GiveUp:
    """After failed attempt number `attempt` (1-based): retry later, or give up for good. A destination's
    Retry-After is honoured up to `retry_after_cap` seconds: a hook cannot park a delivery for days."""
    if permanent:
        return GiveUp("the error cannot be fixed by retrying")
    if attempt >= max_attempts:
        return GiveUp(f"{attempt} attempts failed")
    delay = delays[min(attempt - 1, len(delays) - 1)] if delays else 0.0
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return RetryAt(now + timedelta(seconds=delay))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def is_permanent_http_status(status: int) -> bool:
    """4xx other than 408 (timeout) and 429 (rate limit) will fail again; so do redirects for a hook."""
    return (400 <= status < 500 and status not in (408, 429)) or 300 <= status < 400


def superseded(command: DeliveryCommand, order: dict[str, Any] | None) -> bool:
    """An order event's delivery is dropped once the order has been cancelled after that event."""
    if order is None or command.orderId is None or command.eventType == "order.cancelled":
        return False
    cancelled_at = order.get("cancelledAt")
    if not cancelled_at:
        return False
    return command.occurredAt is None or command.occurredAt <= datetime.fromisoformat(cancelled_at)

"""The words operators read for a delivery's state."""

from __future__ import annotations


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

"""Which integrations an event goes to."""

from __future__ import annotations

from collections.abc import Iterable

from service.contracts import Integration


def route(
    event_type: str, tenant: str, integrations: Iterable[Integration], only: str | None = None
) -> list[Integration]:
    """Every enabled integration of the tenant that subscribes to the event type (or just `only`)."""
    return sorted(
        (
            i
            for i in integrations
            if i.enabled and i.tenant == tenant and event_type in i.events and (only is None or i.id == only)
        ),
        key=lambda i: i.id,
    )

"""Which integrations an event goes to."""

from __future__ import annotations

from collections.abc import Iterable

from service.contracts import Integration
from service.planning.health import kept_while_disabled


def route(
    event_type: str, tenant: str, integrations: Iterable[Integration], only: str | None = None
) -> list[Integration]:
    """Every enabled integration of the tenant that subscribes to the event type (or just `only`), and
    every one the service turned off: its deliveries are kept for a re-drive (planning/health.py)."""
    return sorted(
        (
            i
            for i in integrations
            if (i.enabled or kept_while_disabled(i))
            and i.tenant == tenant
            and event_type in i.events
            and (only is None or i.id == only)
        ),
        key=lambda i: i.id,
    )

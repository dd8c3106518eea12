"""Order links waiting for their recipe: how they are kept, and when they stop waiting.

Each waiting link is its own entry in `pending-links`, under `link_key`; the recipe's own key holds
only the list of those keys (short strings), so adding a link never rewrites the others, and a link
read again after a crash overwrites its entry instead of waiting twice. Older workers kept the links
themselves in the recipe's list: such inline entries are still read, and rewritten as entries when
the list next changes.

An order may arrive before its recipe, but not wait forever: after `pending_link_ttl_seconds` its
links expire, and each integration that would have received it gets a failed result ("expired:
the recipe never arrived") and its failure notification. Every order's files arrive, or someone is
told.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from service.contracts import DeliveryCommand, Integration, OrderLink
from service.planning.commands import link_commands_with_files

EXPIRED = "expired: the recipe never arrived"
SWEEP = "sweep"  # the marker of a sweep request on order-links (not a link)


def link_key(link: OrderLink) -> str:
    """A waiting link's own key: the recipe, the event (or trigger) and the one integration it is for."""
    return "\x1f".join(("link", link.recipeId, link.eventId, link.integrationId or ""))


def is_link_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("link\x1f")


def index_items(index: list[Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """A recipe's list split into (keys of link entries, inline entries left by older workers)."""
    keys = [item for item in index or [] if isinstance(item, str)]
    inline = [item for item in index or [] if isinstance(item, dict)]
    return keys, inline


def waiting_entry(link: OrderLink, now: datetime) -> dict[str, Any]:
    return {**link.model_dump(mode="json"), "waitingSince": now.isoformat()}


def entry_link(entry: dict[str, Any]) -> OrderLink:
    return OrderLink.model_validate({k: v for k, v in entry.items() if k != "waitingSince"})


def is_expired(entry: dict[str, Any], now: datetime, ttl_seconds: float) -> bool:
    since = entry.get("waitingSince")
    # Entries from before waiting had a start are treated as starting now: they get a whole period.
    return since is not None and datetime.fromisoformat(since) + timedelta(seconds=ttl_seconds) <= now


def split_expired(
    entries: list[dict[str, Any]], now: datetime, ttl_seconds: float
) -> tuple[list[OrderLink], list[dict[str, Any]]]:
    """(links that expired, entries still waiting)."""
    expired = [entry_link(e) for e in entries if is_expired(e, now, ttl_seconds)]
    kept = [e for e in entries if not is_expired(e, now, ttl_seconds)]
    return expired, kept


def expired_commands(link: OrderLink, integrations: list[Integration], now: datetime) -> list[DeliveryCommand]:
    """The deliveries an expired link would have caused, as failed commands (no files: there is no
    recipe to name them from), for the failure path and its notifications."""
    return link_commands_with_files(link, integrations, now, files=[], replay=None)

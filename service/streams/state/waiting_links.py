"""The join's `pending-links` table: order links kept until their recipe arrives (layout in
planning/pending.py). Changed only by the join, in the recipe's partition; read by the status view on
the partition's owner."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from service.app import pending_links_table
from service.contracts import OrderLink
from service.planning.pending import entry_link, index_items, is_expired, is_link_key, link_key, waiting_entry


def add(link: OrderLink, now: datetime) -> None:
    key = link_key(link)
    pending_links_table[key] = waiting_entry(link, now)
    index = pending_links_table.get(link.recipeId) or []
    if key not in index:
        pending_links_table[link.recipeId] = [*index, key]


def entries(recipe_id: str) -> list[dict[str, Any]]:
    """Every link waiting for `recipe_id`, as stored (with the time it started waiting)."""
    keys, inline = index_items(pending_links_table.get(recipe_id))
    found = [pending_links_table.get(key) for key in keys]
    return [entry for entry in found if entry] + inline


def keep_only(recipe_id: str, kept: Iterable[dict[str, Any]] = ()) -> None:
    """Forget the recipe's waiting links except `kept` (written as entries of their own)."""
    keys, _ = index_items(pending_links_table.get(recipe_id))
    kept_keys = []
    for entry in kept:
        key = link_key(entry_link(entry))
        pending_links_table[key] = entry
        kept_keys.append(key)
    for key in set(keys) - set(kept_keys):
        pending_links_table.pop(key, None)
    if kept_keys:
        pending_links_table[recipe_id] = kept_keys
    else:
        pending_links_table.pop(recipe_id, None)


def recipes_with_expired_links(now: datetime, ttl_seconds: float) -> set[str]:
    """Recipes (of this worker's partitions) with a link that waited longer than the limit."""
    due = set()
    for key, value in list(pending_links_table.items()):
        if is_link_key(key) and isinstance(value, dict):
            if is_expired(value, now, ttl_seconds):
                due.add(str(value["recipeId"]))
        elif any(is_expired(entry, now, ttl_seconds) for entry in index_items(value)[1]):
            due.add(str(key))
    return due

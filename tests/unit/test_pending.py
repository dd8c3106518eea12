"""When a waiting order link expires, and what its expiry delivers to the failure path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.contracts import Integration, OrderLink
from service.planning.commands import delivery_id
from service.planning.pending import (
    entry_link,
    expired_commands,
    index_items,
    is_link_key,
    link_key,
    split_expired,
    waiting_entry,
)
from tests.integrations import integration as configured

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def link(event_id: str = "e1") -> OrderLink:
    return OrderLink(
        eventId=event_id,
        eventType="order.created",
        occurredAt=NOW,
        tenant="acme",
        orderId="o1",
        orderNumber="1022",
        itemId="i1",
        recipeId="r1",
    )


def test_links_expire_at_the_limit_and_the_rest_keep_waiting():
    old, young = waiting_entry(link("old"), NOW - timedelta(days=7)), waiting_entry(link("young"), NOW)
    expired, kept = split_expired([old, young], NOW, ttl_seconds=7 * 24 * 3600)
    assert [x.eventId for x in expired] == ["old"] and kept == [young]
    assert entry_link(young) == link("young")


def test_entries_from_before_waiting_had_a_start_never_expire_at_once():
    entry = link().model_dump(mode="json")
    assert split_expired([entry], NOW, ttl_seconds=1) == ([], [entry])


def test_an_expired_link_fails_each_integration_it_would_have_reached_with_a_stable_id():
    integration = Integration.model_validate(configured("acme", "zapier", {}, id="acme-hook"))
    [command] = expired_commands(link(), [integration], NOW)
    assert command.deliveryId == delivery_id("e1", "r1", "acme-hook")
    assert command.files == [] and command.orderNumber == "1022"


def test_each_waiting_link_has_its_own_key_and_a_replayed_link_the_same_one():
    assert link_key(link("e1")) != link_key(link("e2"))
    assert link_key(link("e1")) == link_key(link("e1"))
    assert link_key(link("e1")) != link_key(link("e1").model_copy(update={"integrationId": "acme-hook"}))
    assert is_link_key(link_key(link())) and not is_link_key("r1")


def test_a_recipes_list_from_older_workers_still_counts_its_inline_links():
    old = waiting_entry(link("old"), NOW)
    assert index_items([link_key(link("new")), old]) == ([link_key(link("new"))], [old])
    assert index_items(None) == ([], [])

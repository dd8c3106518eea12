"""When a waiting order link expires, and what its expiry delivers to the failure path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.contracts import Integration, OrderLink
from service.planning.commands import delivery_id
from service.planning.pending import entry_link, expired_commands, split_expired, waiting_entry

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
    integration = Integration.model_validate(
        {
            "id": "acme-hook",
            "tenant": "acme",
            "type": "zapier",
            "enabled": True,
            "events": ["order.created"],
            "settings": {},
        }
    )
    [command] = expired_commands(link(), [integration], NOW)
    assert command.deliveryId == delivery_id("e1", "r1", "acme-hook")
    assert command.files == [] and command.orderNumber == "1022"

from datetime import UTC, datetime

from service.contracts import Integration, OrderEvent, RecipeEvent
from service.planning.commands import delivery_id, link_commands, recipe_commands
from service.planning.links import order_links, order_summary
from service.planning.routing import route
from tests.events import example
from tests.integrations import ORDER_FEED
from tests.integrations import integration as configured

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def integration(id_, tenant="acme", events=ORDER_FEED, enabled=True, type_="local"):
    return Integration.model_validate(configured(tenant, type_, {"directory": "x"}, events, id=id_, enabled=enabled))


def test_route_picks_enabled_integrations_of_the_tenant_subscribed_to_the_event():
    candidates = [
        integration("a"),
        integration("disabled", enabled=False),
        integration("other-tenant", tenant="globex"),
        integration("raw-feed", events=["recipe.created"]),
    ]
    assert [i.id for i in route("order.created", "acme", candidates)] == ["a"]
    assert [i.id for i in route("recipe.created", "acme", candidates)] == ["raw-feed"]
    assert route("order.created", "acme", candidates, only="raw-feed") == []


def test_delivery_id_is_stable_and_distinct_per_event_recipe_and_integration():
    assert delivery_id("e1", "r1", "i1") == delivery_id("e1", "r1", "i1")
    assert (
        len(
            {
                delivery_id("e1", "r1", "i1"),
                delivery_id("e2", "r1", "i1"),
                delivery_id("e1", "r2", "i1"),
                delivery_id("e1", "r1", "i2"),
            }
        )
        == 4
    )


def test_order_command_names_files_like_the_seed_and_carries_no_personal_data():
    recipe = RecipeEvent.model_validate(example("recipe-created.json"))
    order = OrderEvent.model_validate(example("order-created.json"))
    [link] = order_links(order)
    [command] = link_commands(link, recipe, [integration("a")], NOW)
    names = [f.name for f in command.files]
    assert "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf" in names
    assert command.orderNumber == "1022" and command.orderId == "6182665224482"
    text = command.model_dump_json()
    assert "jane" not in text.lower() and "Springfield" not in text and "secret" not in text


def test_recipe_command_uses_raw_feed_names():
    recipe = RecipeEvent.model_validate(example("recipe-created.json"))
    [command] = recipe_commands(recipe, [integration("raw", events=["recipe.created"])], NOW)
    assert [f.name for f in command.files][:2] == [
        "999-63CHGJokGoxPfSba-Recipe.json",
        "999-63CHGJokGoxPfSba-Ticket.pdf",
    ]
    assert command.orderId is None


def test_an_order_gives_one_link_per_distinct_recipe():
    doc = example("order-created.json")
    doc["lineItems"] = [
        {"itemId": "1", "recipeId": "r-a", "itemQuantity": 1},
        {"itemId": "2", "recipeId": "r-b", "itemQuantity": 1},
        {"itemId": "3", "recipeId": "r-a", "itemQuantity": 4},
    ]
    assert [link.recipeId for link in order_links(OrderEvent.model_validate(doc))] == ["r-a", "r-b"]


def test_order_summary_drops_personal_data_and_remembers_cancellation():
    created = OrderEvent.model_validate(example("order-created.json"))
    cancelled = OrderEvent.model_validate(example("order-cancelled.json"))
    summary = order_summary(cancelled, order_summary(created, None))
    assert "customer" not in summary and "shippingAddress" not in summary
    assert summary["cancelledAt"] and summary["lastEventType"] == "order.cancelled"
    updated = created.model_copy(update={"type": "order.updated"})
    assert order_summary(updated, summary)["cancelledAt"] == summary["cancelledAt"]


def test_a_message_from_a_newer_worker_with_a_field_this_one_does_not_know_is_still_read():
    """During a rolling upgrade old and new workers read each other's internal messages."""
    [link] = order_links(OrderEvent.model_validate(example("order-created.json")))
    newer = {**link.model_dump(mode="json"), "fieldOfANewerRelease": 1}
    assert type(link).model_validate(newer) == link
    [command] = link_commands(
        link, RecipeEvent.model_validate(example("recipe-created.json")), [integration("i1")], NOW
    )
    assert type(command).model_validate({**command.model_dump(mode="json"), "another": "x"}) == command

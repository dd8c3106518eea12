import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from service.contracts import AttemptError, DeliveryCommand, DeliveryResult, Integration, OrderEvent, RecipeEvent
from service.netpolicy import NetPolicy, RefusedDestination, check_url, is_public
from service.planning.commands import link_commands, recipe_commands
from service.planning.links import order_links
from service.planning.notifications import failure_notification, success_notification
from service.planning.payloads import email_subject, webhook_signature, zapier_payload
from service.planning.retry_policy import (
    GiveUp,
    RetryAt,
    is_permanent_http_status,
    next_step,
    parse_retry_after,
    superseded,
)
from tests.events import example
from tests.integrations import integration

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def hook(**fields):
    base = integration(
        "acme",
        "zapier",
        {"hook-url": "https://h.example/x"},
        id="acme-hook",
        description="ACME hook",
        successNotificationList="ok@acme.example",
        failureNotificationList="alerts@acme.example",
    )
    return Integration.model_validate({**base, **fields})


def order_command() -> DeliveryCommand:
    recipe = RecipeEvent.model_validate(example("recipe-created.json"))
    [link] = order_links(OrderEvent.model_validate(example("order-created.json")))
    return link_commands(link, recipe, [hook()], NOW)[0]


def raw_command() -> DeliveryCommand:
    recipe = RecipeEvent.model_validate(example("recipe-created.json"))
    return recipe_commands(recipe, [hook(events=["recipe.created"])], NOW)[0]


def result(outcome="delivered", attempt=1, final=True, error=None):
    c = order_command()
    return DeliveryResult(
        deliveryId=c.deliveryId,
        integrationId=c.integrationId,
        integrationType="zapier",
        tenant="acme",
        eventType=c.eventType,
        recipeId=c.recipeId,
        orderId=c.orderId,
        orderNumber=c.orderNumber,
        attempt=attempt,
        startedAt=NOW,
        finishedAt=NOW,
        outcome=outcome,
        final=final,
        error=error,
    )


def test_retries_follow_the_delays_then_give_up_after_the_last_attempt():
    delays = [30.0, 120.0]
    first = next_step(1, max_attempts=3, delays=delays, permanent=False, retry_after=None, now=NOW)
    second = next_step(2, max_attempts=3, delays=delays, permanent=False, retry_after=None, now=NOW)
    assert first == RetryAt(NOW + timedelta(seconds=30)) and second == RetryAt(NOW + timedelta(seconds=120))
    assert isinstance(next_step(3, max_attempts=3, delays=delays, permanent=False, retry_after=None, now=NOW), GiveUp)


def test_permanent_errors_give_up_at_once_and_retry_after_is_honoured_within_a_cap():
    assert isinstance(next_step(1, max_attempts=3, delays=[30], permanent=True, retry_after=None, now=NOW), GiveUp)
    later = next_step(1, max_attempts=3, delays=[30], permanent=False, retry_after=300, now=NOW)
    assert later == RetryAt(NOW + timedelta(seconds=300))
    capped = next_step(1, max_attempts=3, delays=[30], permanent=False, retry_after=10**9, now=NOW)
    assert capped == RetryAt(NOW + timedelta(hours=1))
    configured = next_step(
        1, max_attempts=3, delays=[30], permanent=False, retry_after=10**9, now=NOW, retry_after_cap=600
    )
    assert configured == RetryAt(NOW + timedelta(minutes=10))


def test_retry_after_header_forms():
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Thu, 26 Nov 2026 12:01:00 GMT", NOW) == 60
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (404, True), (408, False), (429, False), (500, False), (503, False), (301, True)],
)
def test_which_http_statuses_are_worth_retrying(status, permanent):
    assert is_permanent_http_status(status) is permanent


def test_zapier_payload_is_the_seeds_format():
    payload = zapier_payload(order_command())
    assert payload["orderId"] == "6182665224482" and payload["orderNumber"] == "1022"
    assert payload["eventType"] == "order.created" and "recipeId" not in payload
    assert payload["files"][1] == {
        "name": "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf",
        "mimeType": "application/pdf",
        "url": "https://assets.example/recipe/999-63CHGJokGoxPfSba.pdf",
    }
    raw = zapier_payload(raw_command())
    assert raw["recipeId"] == "999-63CHGJokGoxPfSba" and "orderId" not in raw


def test_webhook_signature_verifies_with_the_standard_webhooks_library():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = orjson.dumps({"a": 1})
    ts = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "dlv_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": webhook_signature(secret, "dlv_1", ts, body),
    }
    Webhook(secret).verify(body, headers)


def test_email_subject_starts_with_the_prefix_and_names_order_and_recipe():
    subject = email_subject("[ACME]", order_command())
    assert subject.startswith("[ACME] ") and "1022" in subject and "999-63CHGJokGoxPfSba" in subject


def test_notifications_name_the_order_and_every_error_and_skip_email_integrations():
    command = order_command().model_copy(
        update={"attempt": 3, "errors": [AttemptError(attempt=n, at=NOW, error=f"boom {n}") for n in (1, 2, 3)]}
    )
    failure = failure_notification(command, hook(), "3 attempts failed")
    assert failure["to"] == ["alerts@acme.example"] and "1022" in failure["subject"]
    assert all(f"boom {n}" in failure["body"] for n in (1, 2, 3)) and "ACME hook" in failure["body"]
    assert success_notification(command, hook(), result())["to"] == ["ok@acme.example"]
    email = hook(type="email", settings={"to": "x@acme.example"})
    assert success_notification(command, email, result()) is None
    assert failure_notification(command, hook(failureNotificationList=""), "x") is None


async def test_private_and_unlisted_destinations_are_refused():
    assert not is_public("127.0.0.1") and not is_public("10.1.2.3") and not is_public("169.254.169.254")
    assert is_public("93.184.216.34")
    with pytest.raises(RefusedDestination, match="not a public address"):
        await check_url("http://127.0.0.1:9/x", NetPolicy(allow_private=False))
    with pytest.raises(RefusedDestination, match="not a configured asset host"):
        await check_url(
            "http://other.example/x", NetPolicy(allow_private=True), allowed_hosts=frozenset({"assets.example"})
        )
    await check_url("http://127.0.0.1:9/x", NetPolicy(allow_private=True), allowed_hosts=frozenset({"127.0.0.1:9"}))


def test_a_cancellation_supersedes_earlier_order_events_only():
    command = order_command().model_copy(update={"occurredAt": NOW})
    cancelled = {"cancelledAt": (NOW + timedelta(minutes=5)).isoformat()}
    assert superseded(command, cancelled)
    assert not superseded(command, {"cancelledAt": None})
    assert not superseded(command.model_copy(update={"eventType": "order.cancelled"}), cancelled)
    assert not superseded(raw_command(), cancelled)

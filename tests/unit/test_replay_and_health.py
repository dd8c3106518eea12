"""Replays and re-drives decided; health decided; metric labels bounded; quiet libraries."""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

import mode
import orjson
import pytest

from service import metrics
from service.contracts import DeliveryCommand
from service.health import (
    BROKER_SILENCE_SECONDS,
    CRASH_LIMIT,
    Noticed,
    ViewState,
    liveness_problems,
    readiness_problems,
)
from service.logs import QUIET_LOGGERS, logging_config
from service.operators.metrics_route import lags
from service.planning.replay import (
    REPLAY_HEADER,
    BadRequest,
    Failed,
    RedriveFilter,
    ReplayFilter,
    Window,
    header,
    parse_when,
    redrive_matches,
    redriven,
    replay_headers,
    replay_matches,
    still_failed,
)
from service.planning.retry_policy import GiveUp, RetryAt, next_step
from service.streams.state.topic_views import TopicView
from tests.events import example

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ replay windows and filters


def test_times_are_iso_or_a_span_ago():
    assert parse_when("2026-11-26T10:00:00Z", NOW) == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_when("2026-11-26T10:00:00", NOW) == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_when("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_when("3d", NOW) == NOW - timedelta(days=3)
    with pytest.raises(BadRequest, match="neither"):
        parse_when("yesterday", NOW)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (Window(), "give a window"),
        (Window(since=NOW, from_offset=3), "not both"),
        (Window(since=NOW, until=NOW), "later than"),
        (Window(from_offset=5, to_offset=5), "greater than"),
        (Window(from_offset=-1), "0 or more"),
    ],
)
def test_a_window_that_cannot_be_used_is_refused_with_its_reason(window, message):
    with pytest.raises(BadRequest, match=message):
        window.check()


def test_only_input_topics_and_their_own_event_types_are_replayed():
    with pytest.raises(BadRequest, match="only recipes and orders"):
        ReplayFilter("deliveries").check()
    with pytest.raises(BadRequest, match=r"not 'order\.created'"):
        ReplayFilter("recipes", event_type="order.created").check()
    with pytest.raises(BadRequest, match="orders only"):
        ReplayFilter("recipes", order_id="o1").check()
    assert ReplayFilter("orders", event_type="order.cancelled").check()


def order(**fields):
    doc = example("order-created.json")
    doc.update(fields)
    return orjson.dumps(doc)


def test_replay_filters_by_tenant_order_recipe_and_type():
    value = order(tenant="acme", orderId="o1", type="order.updated")
    recipe_id = orjson.loads(value)["lineItems"][0]["recipeId"]
    assert replay_matches(ReplayFilter("orders"), value, None)
    assert replay_matches(ReplayFilter("orders", tenant="acme", order_id="o1", recipe_id=recipe_id), value, None)
    assert not replay_matches(ReplayFilter("orders", tenant="other"), value, None)
    assert not replay_matches(ReplayFilter("orders", order_id="o2"), value, None)
    assert not replay_matches(ReplayFilter("orders", recipe_id="not-in-it"), value, None)
    assert not replay_matches(ReplayFilter("orders", event_type="order.created"), value, None)
    recipe = orjson.dumps({**example("recipe-created.json"), "recipeId": "r1"})
    assert replay_matches(ReplayFilter("recipes", recipe_id="r1"), recipe, [])
    assert not replay_matches(ReplayFilter("recipes", recipe_id="r2"), recipe, [])


def test_earlier_replays_and_unreadable_messages_are_not_replayed():
    value = order()
    assert not replay_matches(ReplayFilter("orders"), value, replay_headers("r-1", None))
    assert not replay_matches(ReplayFilter("orders"), b"{not json", None)
    assert not replay_matches(ReplayFilter("orders"), b"[1]", None)
    assert not replay_matches(ReplayFilter("orders"), None, None)


def test_headers_read_from_pairs_or_a_mapping():
    pairs = replay_headers("r-1", "acme-hook")
    assert header(pairs, REPLAY_HEADER) == "r-1"
    assert header(dict(pairs), "outbound-replay-integration") == "acme-hook"
    assert header(None, REPLAY_HEADER) is None
    assert replay_headers("r-1", None) == [(REPLAY_HEADER, b"r-1")]


# ------------------------------------------------------------------ re-drive


def command(**fields):
    base = {
        "deliveryId": "dlv_1",
        "integrationId": "acme-sftp",
        "integrationType": "sftp",
        "tenant": "acme",
        "eventType": "order.created",
        "eventId": "e1",
        "recipeId": "r1",
        "orderId": "o1",
        "orderNumber": "1001",
        "files": [],
        "attempt": 3,
        "errors": [{"attempt": 3, "at": NOW.isoformat(), "error": "SFTP: connection refused"}],
        "createdAt": NOW.isoformat(),
    }
    return DeliveryCommand.model_validate({**base, **fields})


def failed_doc(**fields):
    return {"command": command(**fields).model_dump(mode="json"), "reason": "3 attempts failed"}


def test_redrive_filters_by_tenant_integration_time_and_error_text():
    doc = failed_doc()
    assert redrive_matches(RedriveFilter(), doc, NOW)
    assert redrive_matches(RedriveFilter(tenant="acme", integration_id="acme-sftp", error_contains="REFUSED"), doc, NOW)
    assert redrive_matches(RedriveFilter(error_contains="attempts failed"), doc, NOW)
    assert not redrive_matches(RedriveFilter(tenant="other"), doc, NOW)
    assert not redrive_matches(RedriveFilter(integration_id="acme-s3"), doc, NOW)
    assert not redrive_matches(RedriveFilter(error_contains="host key"), doc, NOW)
    assert not redrive_matches(RedriveFilter(since=NOW + timedelta(seconds=1)), doc, NOW)
    assert not redrive_matches(RedriveFilter(until=NOW), doc, NOW)
    assert not redrive_matches(RedriveFilter(), {"reason": "no command"}, NOW)


def test_a_redrive_is_a_new_series_under_the_same_delivery_id():
    again = redriven(command(), "rd-1", NOW)
    assert (again.deliveryId, again.attempt, again.seriesStart, again.redrive) == ("dlv_1", 4, 4, "rd-1")
    assert again.dueAt is None and again.errors == []
    # Its series gets every attempt again: the retry policy counts from the series' start.
    delays = [30.0, 120.0]
    in_series = again.attempt - again.seriesStart + 1
    assert isinstance(
        next_step(in_series, max_attempts=3, delays=delays, permanent=False, retry_after=None, now=NOW), RetryAt
    )
    assert isinstance(next_step(3, max_attempts=3, delays=delays, permanent=False, retry_after=None, now=NOW), GiveUp)


def test_a_delivery_redriven_is_sent_once_and_not_after_it_was_delivered():
    first, later = Failed(command(), NOW), Failed(command(attempt=6), NOW + timedelta(hours=1))
    other = Failed(command(deliveryId="dlv_2"), NOW)
    assert still_failed([first, later, other], {}) == [later, other]
    assert still_failed([first, other], {"dlv_1": NOW + timedelta(minutes=5)}) == [other]
    assert still_failed([later], {"dlv_1": NOW + timedelta(minutes=5)}) == [later], "failed again after"


# ------------------------------------------------------------------ health


def views(*states):
    return [ViewState(name, caught_up, failure) for name, caught_up, failure in states]


def test_ready_when_nothing_is_busy_and_the_broker_answers():
    state = Noticed(started=0.0, broker_answered=100.0)
    ok = views(("integrations", True, None), ("order index", True, None))
    assert readiness_problems(state, ok, 101.0, in_recovery=False, rebalancing=False) == []
    busy = readiness_problems(state, views(("integrations", False, None)), 101.0, in_recovery=True, rebalancing=True)
    assert busy == ["recovering", "rebalancing", "loading the integrations"]


def test_not_ready_while_the_broker_is_silent_and_ready_again_after():
    state = Noticed(started=0.0, broker_answered=100.0, broker_error="KafkaConnectionError")
    later = 100.0 + BROKER_SILENCE_SECONDS + 1
    assert readiness_problems(state, [], later, in_recovery=False, rebalancing=False) == [
        "broker unreachable (KafkaConnectionError)"
    ]
    assert readiness_problems(Noticed(started=0.0), [], 1.0, in_recovery=False, rebalancing=False) == [
        "broker unreachable"
    ], "not ready before the first answer"
    state.broker_answered, state.broker_error = later, None
    assert readiness_problems(state, [], later + 1, in_recovery=False, rebalancing=False) == []


def test_a_dead_view_is_neither_ready_nor_live():
    dead = views(("order index", True, "RuntimeError: boom"))
    state = Noticed(started=0.0, broker_answered=10.0)
    assert readiness_problems(state, dead, 11.0, in_recovery=False, rebalancing=False) == [
        "the order index view stopped"
    ]
    assert liveness_problems(state, dead, 11.0, block_threshold=10, loop_stalled_for=0) == [
        "the order index view stopped: RuntimeError: boom"
    ]


async def test_an_app_task_that_raises_crashes_the_worker_so_a_dying_view_returns_instead():
    """Faust runs app tasks through mode's Service.add_future: an exception crashes the whole app.
    A view that stopped must keep the worker up so that liveness can say why (and not a crash)."""

    class Service(mode.Service):
        pass

    async def raising() -> None:
        raise RuntimeError("a task's bug")

    service = Service()
    await service.add_future(raising())
    assert service._crashed.is_set(), "mode no longer crashes a service on a raising task"

    async def dying(settings: object) -> None:
        raise RuntimeError("a record this view cannot read")

    view: TopicView[str] = TopicView("order-index", lambda key, value: None, "order index")
    view._follow = dying  # type: ignore[method-assign]
    await view.run(settings=None)  # type: ignore[arg-type]
    assert view.failure == "RuntimeError: a record this view cannot read"


def test_liveness_ignores_recovery_and_the_broker_but_not_crash_loops_or_a_blocked_loop():
    state = Noticed(started=0.0)
    assert liveness_problems(state, [], 1000.0, block_threshold=10, loop_stalled_for=0) == []
    state.crashes = defaultdict(deque, {"deliver": deque([990.0] * (CRASH_LIMIT - 1)), "old": deque([1.0] * 9)})
    assert liveness_problems(state, [], 1000.0, block_threshold=10, loop_stalled_for=0) == []
    state.crashes["deliver"].append(995.0)
    assert liveness_problems(state, [], 1000.0, block_threshold=10, loop_stalled_for=0) == [
        "agent deliver is crash-looping"
    ]
    state = Noticed(started=0.0)
    state.blocks.append((990.0, 12.5))
    assert liveness_problems(state, [], 1000.0, block_threshold=10, loop_stalled_for=0) == [
        "the event loop was blocked for 12.5s (limit 10s)"
    ]
    assert liveness_problems(state, [], 1100.0, block_threshold=10, loop_stalled_for=0) == [], "a minute later"
    assert liveness_problems(state, [], 1100.0, block_threshold=10, loop_stalled_for=11)


# ------------------------------------------------------------------ metrics


def test_reason_classes_are_few_and_fixed():
    assert metrics.reason_class(["message is 2000000 bytes, more than the limit of 1000000"]) == "too_large"
    assert metrics.reason_class(["message is not JSON: unexpected character (line 1, column 1)"]) == "not_json"
    assert metrics.reason_class(["message key 'x' differs from orderId 'y' in the body"]) == "key"
    assert metrics.reason_class(["internal error while handling the event: KeyError"]) == "internal_error"
    assert metrics.reason_class(["lineItems: [] should be non-empty"]) == "invalid"
    assert metrics.topic_label("t1.orders", "t1.") == "orders"
    assert metrics.retry_tier(2) == "1" and metrics.retry_tier(3) == "2" and metrics.retry_tier(5, 4) == "1"
    assert metrics.attempt_outcome("failed", final=False) == "retrying"


def test_time_to_deliver_counts_a_delivery_once_and_never_a_replay():
    def observed() -> float:
        return metrics.time_to_deliver.labels("local")._sum.get()  # type: ignore[attr-defined]

    before = observed()
    common = {"integration_type": "local", "started": NOW, "finished": NOW, "sent": 10, "final": True}
    occurred = NOW - timedelta(seconds=40)
    metrics.record_attempt(outcome="failed", delivery_id="dlv_once", occurred_at=occurred, replay=False, **common)
    metrics.record_attempt(outcome="delivered", delivery_id="dlv_once", occurred_at=occurred, replay=False, **common)
    metrics.record_attempt(outcome="delivered", delivery_id="dlv_once", occurred_at=occurred, replay=False, **common)
    metrics.record_attempt(outcome="delivered", delivery_id="dlv_replay", occurred_at=occurred, replay=True, **common)
    assert observed() - before == 40.0


def test_lag_counts_from_the_commit_or_from_the_start():
    assert lags({"a": 10, "b": 7, "c": 5}, {"a": 4, "b": None, "c": 9}, {"b": 2}) == {"a": 6, "b": 5, "c": 0}


def test_noisy_libraries_log_warnings_only():
    config = logging_config("info")
    assert config["root"]["level"] == "INFO"
    for name in ("azure.core.pipeline.policies.http_logging_policy", "httpx", "httpcore", "asyncssh"):
        assert name in QUIET_LOGGERS and config["loggers"][name]["level"] == "WARNING", name
    assert logging_config("error")["loggers"]["httpx"]["level"] == "ERROR"

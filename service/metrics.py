"""Every Prometheus metric the service exports, declared once (prometheus_client, the default registry).

Labels are bounded by configuration: integration type and id, the outcome, the catalog's topic names,
a reason class, a notification kind, a retry tier. Never a tenant's order, recipe or customer.
The gauges that describe the consumer (lag, recovery) are set when /metrics is scraped.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

# Seconds from an event to its delivery: a manufacturer cares about minutes and hours, not milliseconds.
TIME_TO_DELIVER_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
ATTEMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

deliveries = Counter(
    "outbound_deliveries",
    "Delivery attempts by integration type and outcome (delivered; retrying: failed, to be tried again; "
    "failed: failed for good; superseded; skipped).",
    ["integration_type", "outcome"],
)
attempt_duration = Histogram(
    "outbound_delivery_attempt_duration_seconds",
    "How long one delivery attempt took (files fetched and handed over).",
    ["integration_type"],
    buckets=ATTEMPT_BUCKETS,
)
delivered_bytes = Counter(
    "outbound_delivered_bytes", "Bytes handed to destinations by delivered attempts.", ["integration_type"]
)
retries_waiting = Gauge(
    "outbound_retries_waiting",
    "Retries waiting for their due time, by tier (1: the first retry; paced: deliveries waiting for their"
    " integration's rate).",
    ["tier"],
)
deliveries_failed = Counter(
    "outbound_deliveries_failed",
    "Deliveries that failed for good (sent to deliveries-failed; their failure list is told).",
    ["integration_type", "integration_id"],
)
late_deliveries = Counter(
    "outbound_late_deliveries",
    "Order events whose files had not reached an integration within its deliverWithinMinutes (once per "
    "order event and integration; its failure list is told).",
    ["integration_type", "integration_id"],
)
integrations_disabled = Counter(
    "outbound_integrations_disabled",
    "Integrations the service turned off: a receiver gone (410) or too many deliveries in a row failed for good.",
    ["integration_type"],
)
notifications_sent = Counter("outbound_notifications_sent", "Notification e-mails the relay took.", ["kind"])
notifications_lost = Counter(
    "outbound_notifications_lost", "Notification e-mails given up on (relay down too long, or refused).", ["kind"]
)
invalid_events = Counter(
    "outbound_invalid_events",
    "Messages parked in invalid-events, by the topic they came from and the class of reason.",
    ["topic", "reason"],
)
time_to_deliver = Histogram(
    "outbound_time_to_deliver_seconds",
    "From the event's occurredAt to its delivery, once per delivery (its first success on this worker); "
    "replays are left out.",
    ["integration_type"],
    buckets=TIME_TO_DELIVER_BUCKETS,
)
consumer_lag = Gauge(
    "outbound_consumer_lag",
    "Messages of this worker's partitions not yet committed (high water mark minus committed offset).",
    ["topic", "partition"],
)
table_recovery = Gauge(
    "outbound_table_recovery_in_progress", "1 while this worker restores tables from their changelogs."
)
rebalancing = Gauge("outbound_rebalancing", "1 while the consumer group shares out partitions.")
ready = Gauge("outbound_ready", "1 when /health/ready answers 200.")
event_loop_block = Gauge(
    "outbound_event_loop_block_seconds", "The longest the event loop was blocked in the liveness window."
)
replayed = Counter(
    "outbound_replayed_events", "Events re-published by a replay or re-drive through this worker's API.", ["kind"]
)


# Reasons are free text (they name fields and values); the label keeps only their class.
_REASON_CLASSES = (
    ("too_large", re.compile(r"more than the limit")),
    ("not_json", re.compile(r"not UTF-8|not JSON|expected an object|has no value")),
    ("key", re.compile(r"message (has no )?key")),
    ("plain_secret", re.compile(r"secret published in plain text")),
    ("internal_error", re.compile(r"internal error")),
    ("unknown_reference", re.compile(r"has no order")),
)


def reason_class(reasons: Iterable[str]) -> str:
    """The class of the first reason that has one; schema and other content errors are `invalid`."""
    for reason in reasons:
        for name, pattern in _REASON_CLASSES:
            if pattern.search(reason):
                return name
    return "invalid"


def topic_label(topic: str, prefix: str) -> str:
    """A topic's catalog name: dashboards stay the same whatever the deployment's prefix."""
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def attempt_outcome(outcome: str, final: bool) -> str:
    return "retrying" if outcome == "failed" and not final else outcome


def retry_tier(attempt: int, series_start: int = 1) -> str:
    return str(max(1, attempt - series_start))


class SeenOnce:
    """Remembers the last `size` keys: a delivery done again (a crash, a replay) counts once."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def first(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True


_delivered = SeenOnce()


def record_attempt(
    *,
    integration_type: str,
    outcome: str,
    final: bool,
    started: datetime,
    finished: datetime,
    sent: int,
    delivery_id: str,
    occurred_at: datetime | None,
    replay: bool,
) -> None:
    """Counts one attempt's recorded result (outcome as in delivery-results)."""
    deliveries.labels(integration_type, attempt_outcome(outcome, final)).inc()
    if outcome in ("delivered", "failed"):
        attempt_duration.labels(integration_type).observe(max(0.0, (finished - started).total_seconds()))
    if outcome != "delivered":
        return
    delivered_bytes.labels(integration_type).inc(sent)
    if occurred_at is not None and not replay and _delivered.first(delivery_id):
        time_to_deliver.labels(integration_type).observe(max(0.0, (finished - occurred_at).total_seconds()))

"""GET /metrics: Prometheus text format, no token (like the probes; it carries no personal data).

Counters and histograms move where things happen (service/metrics.py); the gauges that describe
the consumer are read from Faust when Prometheus asks.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import metrics
from service.app import app, settings
from service.health import longest_block, noticed
from service.operators.probes import ready_problems

log = logging.getLogger(__name__)


def lags(highwaters: dict[Any, int], committed: dict[Any, int | None], earliest: dict[Any, int]) -> dict[Any, int]:
    """Messages not yet committed per partition; a partition never committed counts from its start."""
    found = {}
    for tp, high in highwaters.items():
        done = committed.get(tp)
        start = done if done is not None else earliest.get(tp, 0)
        found[tp] = max(0, high - start)
    return found


async def refresh_consumer_gauges() -> None:
    metrics.table_recovery.set(1 if app.in_recovery else 0)
    metrics.rebalancing.set(1 if app.rebalancing else 0)
    metrics.ready.set(0 if ready_problems() else 1)
    metrics.consumer_lag.clear()
    if app.rebalancing:
        return  # the assignment is changing: no figure rather than a wrong one
    try:
        consumer: Any = app.consumer  # faust's Consumer: its committed offsets are not in the interface
        # Changelog partitions are read to restore tables, never committed: their lag means nothing.
        tps = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")]
        highwaters = {tp: h for tp in tps if (h := consumer.highwater(tp)) is not None}
        committed = {tp: consumer._committed_offset.get(tp) for tp in highwaters}
        never = [tp for tp, c in committed.items() if c is None]
        earliest = dict(await consumer.earliest_offsets(*never)) if never else {}
    except Exception as exc:  # a consumer between assignments: no lag figures this scrape
        log.info("consumer lag not available", extra={"error": type(exc).__name__})
        return
    for tp, lag in lags(highwaters, committed, earliest).items():
        metrics.consumer_lag.labels(metrics.topic_label(tp.topic, settings.topic_prefix), str(tp.partition)).set(lag)


@app.page("/metrics")
class Metrics(web.View):
    async def get(self, request: web.Request) -> web.Response:
        await refresh_consumer_gauges()
        metrics.event_loop_block.set(longest_block(noticed.blocks, time.monotonic()))
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

"""The integration-health agent: one owner per integration counts its deliveries failed for good and
turns off a receiver gone for good (service/planning/health.py decides), with one e-mail saying so.

Reports come from every worker (`report_health`): each delivery that failed for good, a 410 Gone, now
and then a success, and an `enabled` when a configuration is published enabled (the count starts over).
The configuration is published turned off like any other, on `integrations`, so every worker reads it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from faust.types import StreamT

from service import metrics
from service.app import (
    app,
    integration_health_table,
    integration_health_topic,
    integrations_topic,
    notifications_topic,
    settings,
)
from service.planning.health import (
    disabled_config,
    disabled_notification,
    fold_report,
    parse_report,
    report_record,
)
from service.streams.machinery.publish import publish
from service.streams.machinery.rejects import handle_each, reject
from service.streams.state.live_views import find_integration

log = logging.getLogger(__name__)


@app.agent(integration_health_topic)
async def watch_health(stream: StreamT[Any]) -> None:
    await handle_each(stream, fold_health_report)


async def fold_health_report(event: Any) -> None:
    integration_id = (event.key or b"").decode("utf-8", "replace")
    try:
        report = parse_report(orjson.loads(event.value))
    except orjson.JSONDecodeError:
        report = None
    if report is None or not integration_id:
        await reject(event.message, ["not an integration health report: {kind, at, error} keyed by integration id"])
        return
    row, decision = fold_report(
        integration_health_table.get(integration_id),
        report,
        failures_to_disable=settings.auto_disable_after_failures,
        span=timedelta(hours=settings.auto_disable_after_hours),
    )
    if decision is not None:
        integration = await find_integration(integration_id)
        if integration is None or not integration.enabled:
            # Deleted or already off: nothing to turn off, and a later configuration starts over.
            row.pop("disabledAt", None)
        else:
            doc = disabled_config(integration.model_dump(mode="json", exclude_none=True), decision)
            await publish(integrations_topic, [(integration_id, doc)])
            notice = disabled_notification(integration, decision)
            if notice is not None:
                await publish(notifications_topic, [(integration_id, notice)])
            metrics.integrations_disabled.labels(integration.type).inc()
            log.warning(
                "integration disabled",
                extra={"integrationId": integration_id, "tenant": integration.tenant, "reason": decision.reason},
            )
    integration_health_table[integration_id] = row


class HealthReports:
    """What a worker reports. Every failure for good counts; successes only end a run of failures, so
    one per integration per `health_success_report_seconds` is enough and costs no record per delivery."""

    def __init__(self) -> None:
        self._success_sent: dict[str, float] = {}

    async def failed(self, integration_id: str, at: datetime, error: str, *, gone: bool) -> None:
        # This worker's next success of the integration is reported at once: it ends this run.
        self._success_sent.pop(integration_id, None)
        await self._send(integration_id, report_record("gone" if gone else "failed", at, error))

    async def delivered(self, integration_id: str, at: datetime) -> None:
        now = time.monotonic()
        last = self._success_sent.get(integration_id)
        if last is not None and now - last < settings.health_success_report_seconds:
            return
        if len(self._success_sent) >= 10_000:
            self._success_sent.clear()  # bounded: forgetting costs one more report, no more
        self._success_sent[integration_id] = now
        await self._send(integration_id, report_record("delivered", at))

    async def _send(self, integration_id: str, record: dict[str, Any]) -> None:
        await publish(integration_health_topic, [(integration_id, record)])


health_reports = HealthReports()

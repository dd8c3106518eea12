"""Where a finished attempt leads: a retry, the failure topic, a success notification."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service import metrics
from service.app import deliveries_failed_topic, deliveries_retry_topic, notifications_topic, settings
from service.contracts import AttemptError, DeliveryCommand, DeliveryResult, Integration
from service.planning.commands import delivery_key
from service.planning.health import DISABLED_ERROR
from service.planning.notifications import success_notification
from service.planning.retry_policy import GiveUp, next_step
from service.streams.machinery.publish import publish
from service.streams.stages.health import health_reports


async def after_failure(
    command: DeliveryCommand,
    integration: Integration,
    error: str,
    *,
    permanent: bool,
    retry_after: float | None,
    gone: bool = False,
) -> bool:
    """Send the failed command on to deliveries-retry or, finally, deliveries-failed. True when final.
    `gone`: the receiver said it is gone for good, which turns the integration off (stages/health.py)."""
    now = datetime.now(UTC)
    errors = [*command.errors, AttemptError(attempt=command.attempt, at=now, error=error)]
    step = next_step(
        # A re-driven delivery's attempts are counted from the start of its series.
        command.attempt - command.seriesStart + 1,
        max_attempts=settings.max_attempts,
        delays=settings.retry_delays(),
        permanent=permanent,
        retry_after=retry_after,
        now=now,
        retry_after_cap=settings.retry_after_cap_seconds,
    )
    if isinstance(step, GiveUp):
        failed = command.model_copy(update={"errors": errors, "dueAt": None})
        record: dict[str, Any] = {"command": failed.model_dump(mode="json"), "reason": step.reason}
        if gone:
            record["gone"] = True
        await publish(deliveries_failed_topic, [(delivery_key(command), record)])
        metrics.deliveries_failed.labels(command.integrationType, command.integrationId).inc()
        return True
    # A retry waits for its due time, not for the rate (it takes its turn of the rate when due).
    retry = command.model_copy(
        update={"errors": errors, "attempt": command.attempt + 1, "dueAt": step.due, "paced": False}
    )
    await publish(deliveries_retry_topic, [(delivery_key(command), retry)])
    return False


async def kept_while_off(command: DeliveryCommand) -> None:
    """A delivery of an integration the service turned off: not attempted, failed for good so that a
    re-drive finds it once the integration is on again; no e-mail (the one saying it is off covers it)."""
    failed = command.model_copy(
        update={
            "errors": [
                *command.errors,
                AttemptError(attempt=command.attempt, at=datetime.now(UTC), error=DISABLED_ERROR),
            ],
            "dueAt": None,
        }
    )
    record = {"command": failed.model_dump(mode="json"), "reason": DISABLED_ERROR, "kept": True}
    await publish(deliveries_failed_topic, [(delivery_key(command), record)])
    metrics.deliveries_failed.labels(command.integrationType, command.integrationId).inc()


async def after_success(command: DeliveryCommand, integration: Integration, result: DeliveryResult) -> None:
    notification = success_notification(command, integration, result)
    if notification is not None:
        await publish(notifications_topic, [(command.deliveryId, notification)])
    await health_reports.delivered(integration.id, result.finishedAt)

"""Where a finished attempt leads: a retry, the failure topic, a success notification."""

from __future__ import annotations

from datetime import UTC, datetime

from service import metrics
from service.app import deliveries_failed_topic, deliveries_retry_topic, notifications_topic, settings
from service.contracts import AttemptError, DeliveryCommand, DeliveryResult, Integration
from service.planning.commands import delivery_key
from service.planning.notifications import success_notification
from service.planning.retry_policy import GiveUp, next_step
from service.streams.machinery.publish import publish


async def after_failure(
    command: DeliveryCommand, integration: Integration, error: str, *, permanent: bool, retry_after: float | None
) -> bool:
    """Send the failed command on to deliveries-retry or, finally, deliveries-failed. True when final."""
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
        await publish(
            deliveries_failed_topic,
            [(delivery_key(command), {"command": failed.model_dump(mode="json"), "reason": step.reason})],
        )
        metrics.deliveries_failed.labels(command.integrationType, command.integrationId).inc()
        return True
    # A retry waits for its due time, not for the rate (it takes its turn of the rate when due).
    retry = command.model_copy(
        update={"errors": errors, "attempt": command.attempt + 1, "dueAt": step.due, "paced": False}
    )
    await publish(deliveries_retry_topic, [(delivery_key(command), retry)])
    return False


async def after_success(command: DeliveryCommand, integration: Integration, result: DeliveryResult) -> None:
    notification = success_notification(command, integration, result)
    if notification is not None:
        await publish(notifications_topic, [(command.deliveryId, notification)])

"""The delivery agent: fetch a command's files, hand them to the destination, record the outcome.

Up to `delivery_concurrency` commands are worked at once, each acknowledged only when it has
finished, so a crash never skips one (Faust commits an offset only once every message before it
is acknowledged). A slow destination holds one slot, not the whole stream: batches would make
every delivery wait for the slowest of its batch.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from faust.types import StreamT

from service.app import app, deliveries_topic, delivery_results_topic, settings
from service.contracts import DeliveryCommand, DeliveryResult, Integration
from service.destinations.base import DeliveryError, Job
from service.planning.commands import delivery_key
from service.secrets import SecretKeyError, is_secret_setting, scrub
from service.streams.configs import find_integration
from service.streams.outcomes import after_failure, after_success
from service.streams.publish import publish
from service.streams.rejects import guarded
from service.streams.runtime import runtime

log = logging.getLogger(__name__)


@app.agent(deliveries_topic)
async def deliver(stream: StreamT[Any]) -> None:
    slots = asyncio.Semaphore(settings.delivery_concurrency)
    running: set[asyncio.Task[None]] = set()
    async for event in cast(Any, stream).noack().events():
        await slots.acquire()
        task = asyncio.create_task(guarded(event, deliver_one))
        running.add(task)

        def finished(task: asyncio.Task[None], event: Any = event) -> None:
            running.discard(task)
            slots.release()
            event.ack()

        task.add_done_callback(finished)


async def deliver_one(event: Any) -> None:
    await attempt(DeliveryCommand.model_validate_json(event.value))


async def attempt(command: DeliveryCommand) -> None:
    """One attempt of one delivery, its result recorded, its failure handed to the retry path."""
    started = datetime.now(UTC)
    integration = await find_integration(command.integrationId)
    if integration is None or not integration.enabled:
        log.warning(
            "delivery skipped: integration deleted or disabled",
            extra={"deliveryId": command.deliveryId, "integrationId": command.integrationId},
        )
        await record(command, started, outcome="skipped", error="the integration is deleted or disabled")
        return
    plain: dict[str, Any] = {}
    try:
        plain = decrypted_settings(integration)
        sent = await run_destination(command, integration, plain)
    except DeliveryError as exc:
        error = scrub(str(exc), plain)
        log.warning(
            "delivery attempt failed",
            extra={
                "deliveryId": command.deliveryId,
                "integrationId": integration.id,
                "attempt": command.attempt,
                "error": error,
                "permanent": exc.permanent,
            },
        )
        final = await after_failure(command, integration, error, permanent=exc.permanent, retry_after=exc.retry_after)
        await record(command, started, outcome="failed", error=error, final=final)
        return
    result = await record(command, started, outcome="delivered", sent=sent)
    log.info(
        "delivered",
        extra={
            "deliveryId": command.deliveryId,
            "integrationId": integration.id,
            "attempt": command.attempt,
            "bytes": sent,
        },
    )
    await after_success(command, integration, result)


def decrypted_settings(integration: Integration) -> dict[str, Any]:
    needs_key = any(is_secret_setting(name) for name in integration.settings)
    box = runtime().box
    if not needs_key:
        return dict(integration.settings)
    if box is None:
        raise DeliveryError("the worker has no OUTBOUND_SECRET_KEYS to open this integration's secrets", permanent=True)
    try:
        return box.decrypt_settings(integration.settings)
    except SecretKeyError as exc:
        raise DeliveryError(str(exc), permanent=True) from exc


async def run_destination(command: DeliveryCommand, integration: Integration, plain: dict[str, Any]) -> int:
    tools = runtime()
    destination = await tools.pool.get(integration, plain)
    with tempfile.TemporaryDirectory(dir=settings.spool_dir, prefix="dlv-") as folder:
        files = await tools.fetcher.fetch_all(command, Path(folder)) if destination.needs_files else []
        job = Job(command=command, integration=integration, settings=plain, files=files)
        try:
            return await asyncio.wait_for(destination.deliver(job), settings.destination_timeout_seconds * 10)
        except TimeoutError as exc:
            await destination.close()
            raise DeliveryError("the destination did not finish in time") from exc
        except DeliveryError:
            raise
        except Exception as exc:  # a library error the adapter did not foresee is still a failed attempt
            log.exception("unexpected delivery error", extra={"deliveryId": command.deliveryId})
            await destination.close()
            raise DeliveryError(f"unexpected {type(exc).__name__}") from exc


async def record(
    command: DeliveryCommand,
    started: datetime,
    *,
    outcome: str,
    error: str | None = None,
    sent: int = 0,
    final: bool = True,
) -> DeliveryResult:
    result = DeliveryResult.model_validate(
        {
            "deliveryId": command.deliveryId,
            "integrationId": command.integrationId,
            "integrationType": command.integrationType,
            "tenant": command.tenant,
            "eventType": command.eventType,
            "recipeId": command.recipeId,
            "orderId": command.orderId,
            "orderNumber": command.orderNumber,
            "attempt": command.attempt,
            "startedAt": started,
            "finishedAt": datetime.now(UTC),
            "bytes": sent,
            "outcome": outcome,
            "error": error,
            "final": final,
        }
    )
    await publish(delivery_results_topic, [(delivery_key(command), result)])
    return result

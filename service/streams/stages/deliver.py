"""The delivery agent: fetch a command's files, hand them to the destination, record the outcome.

Commands are worked concurrently (`concurrency.py`: one task per message, acknowledged in offset
order per partition), each attempt in its turn of its integration's rate and inside a slot of its
integration and of the worker (`destinations/slots.py`); one whose turn is further off waits on the
retry path instead. Whatever goes wrong inside an attempt is classified
(`destinations/failures.py`) and always ends with a recorded result and a retry or a failure notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from faust.types import StreamT

from service import metrics
from service.app import app, deliveries_retry_topic, deliveries_topic, delivery_results_topic, settings
from service.contracts import DeliveryCommand, DeliveryResult, Integration
from service.delivery_errors import DeliveryError, TransientDeliveryError
from service.destinations.base import Job, LocalFile, delivered_files
from service.destinations.failures import classify_failure
from service.destinations.slots import Paced
from service.planning.commands import delivery_key
from service.planning.health import DISABLED_ERROR, kept_while_disabled
from service.planning.order_view import fold_command
from service.planning.preflight import PreflightFailed
from service.planning.retry_policy import superseded
from service.planning.view_keys import kind_of
from service.secrets import is_encrypted, is_secret_setting, scrub
from service.streams.machinery.concurrency import handle_concurrently
from service.streams.machinery.publish import publish
from service.streams.machinery.runtime import runtime
from service.streams.stages.ingest import order_rows
from service.streams.stages.order_view import fold_here, fold_result_into_view
from service.streams.stages.outcomes import after_failure, after_success, kept_while_off
from service.streams.state.live_views import find_integration, latest_integration
from service.streams.state.parked import parked

log = logging.getLogger(__name__)

# A first attempt waits this long at most for its integration's rate in its task; a later turn
# parks it on the retry path (`park_for_rate`).
PACED_WAIT_SECONDS = 1.0


@app.agent(deliveries_topic)
async def deliver(stream: StreamT[Any]) -> None:
    await handle_concurrently(
        stream,
        deliver_one,
        name="deliver",
        sequence_by=order_and_integration,
    )


def order_and_integration(event: Any) -> tuple[str, str] | None:
    """One order's deliveries to one integration write the same names: they go out in event order.
    (Commands are keyed by orderId, so they arrive in that order within one partition.)"""
    try:
        doc = orjson.loads(event.value)
        order_id, integration_id = doc.get("orderId"), doc.get("integrationId")
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return None  # the handler parks what does not parse
    return (str(order_id), str(integration_id)) if order_id and integration_id else None


async def deliver_one(event: Any) -> None:
    doc = orjson.loads(event.value)
    command = DeliveryCommand.model_validate(doc)
    fold_here(delivery_key(command), lambda view: fold_command(view, doc), kind_of(command.orderId))
    if await dropped_if_superseded(command):
        return
    behind = parked.due_after(command)
    if behind is not None:
        # An earlier delivery of its line waits for the rate on the retry path: it stays behind it.
        await park_for_rate(command, behind, event.message.partition)
        return
    try:
        await attempt(command, wait_at_most=PACED_WAIT_SECONDS)
    except Paced as paced:
        await park_for_rate(command, paced.due, event.message.partition)


async def park_for_rate(command: DeliveryCommand, due: float, partition: int) -> None:
    """Hand a delivery whose integration's rate keeps it waiting to the retry path, due when its turn
    would come, as the same attempt: the in-flight window is not held by deliveries that only wait,
    and the waiting room starts them as the rate allows."""
    waiting = command.model_copy(update={"dueAt": datetime.fromtimestamp(due, UTC), "paced": True})
    parked.add(command, due, partition)
    await publish(deliveries_retry_topic, [(delivery_key(command), waiting)])
    log.debug("delivery waits for its integration's rate", extra={**log_ids(command), "dueAt": waiting.dueAt})


def log_ids(command: DeliveryCommand) -> dict[str, Any]:
    """The ids a delivery's log lines carry (never its files' URLs, never an order's personal data)."""
    ids = {
        "deliveryId": command.deliveryId,
        "integrationId": command.integrationId,
        "orderId": command.orderId,
        "recipeId": command.recipeId,
        "replay": command.replay,
        "redrive": command.redrive,
        "reconcile": command.reconcile,
    }
    return {k: v for k, v in ids.items() if v is not None}


async def dropped_if_superseded(command: DeliveryCommand) -> bool:
    """A delivery of an order event the order's cancellation came after is not attempted (first
    attempt or retry): the cancellation is the last word. Read when the delivery's turn comes."""
    if not superseded(command, order_rows.get(command.orderId) if command.orderId else None):
        return False
    log.info("delivery dropped: order cancelled", extra=log_ids(command))
    await record(command, datetime.now(UTC), outcome="superseded", error="the order was cancelled")
    return True


async def attempt(command: DeliveryCommand, *, wait_at_most: float | None = None) -> None:
    """One attempt of one delivery, its result recorded, its failure handed to the retry path. Raises
    `Paced` (nothing done, nothing recorded) when its integration's rate would keep it waiting longer
    than `wait_at_most` seconds (None: it waits its turn)."""
    integration = await find_integration(command.integrationId)
    if integration is not None and kept_while_disabled(integration):
        # An Enable published just before a re-drive must win over this worker's copy being a fetch behind.
        integration = await latest_integration(command.integrationId)
    if integration is not None and kept_while_disabled(integration):
        log.info("delivery kept: the integration is turned off", extra=log_ids(command))
        await kept_while_off(command)
        await record(command, datetime.now(UTC), outcome="failed", error=DISABLED_ERROR)
        return
    if integration is None or not integration.enabled:
        log.warning(
            "delivery skipped: integration deleted or disabled",
            extra=log_ids(command),
        )
        await record(command, datetime.now(UTC), outcome="skipped", error="the integration is deleted or disabled")
        return
    plain: dict[str, Any] = {}
    async with runtime().slots.hold(integration, wait_at_most=wait_at_most):
        started = datetime.now(UTC)
        try:
            plain = decrypted_options(integration)
            sent, files = await run_destination(command, integration, plain)
        except Exception as exc:  # every failure of an attempt is a failed attempt, never bad input
            failure = classify_failure(exc)
            error = scrub(failure.message, plain)
            log.warning(
                "delivery attempt failed",
                extra={
                    **log_ids(command),
                    "attempt": command.attempt,
                    "error": error,
                    "permanent": failure.permanent,
                    # Which pre-flight check refused a file, when one did (a word, never the file's content).
                    **({"preflightCheck": exc.check} if isinstance(exc, PreflightFailed) else {}),
                },
            )
            final = await after_failure(
                command,
                integration,
                error,
                permanent=failure.permanent,
                retry_after=failure.retry_after,
                gone=failure.gone,
            )
            await record(command, started, outcome="failed", error=error, final=final)
            return
    result = await record(command, started, outcome="delivered", sent=sent, files=delivered_files(files))
    log.info(
        "delivered",
        extra={**log_ids(command), "attempt": command.attempt, "bytes": sent},
    )
    await after_success(command, integration, result)


def decrypted_options(integration: Integration) -> dict[str, Any]:
    needs_key = any(is_secret_setting(name) or is_encrypted(value) for name, value in integration.settings.items())
    box = runtime().box
    if not needs_key:
        return dict(integration.settings)
    if box is None:
        raise TransientDeliveryError("the worker has no OUTBOUND_SECRET_KEYS to open this integration's secrets")
    return box.decrypt_settings(integration.settings)


async def run_destination(
    command: DeliveryCommand, integration: Integration, plain: dict[str, Any]
) -> tuple[int, list[LocalFile]]:
    """The bytes sent, and the files handed over (none for a hook: it gets links)."""
    tools = runtime()
    destination = await tools.pool.get(integration, plain)
    async with contextlib.AsyncExitStack() as spool:
        files = []
        if destination.needs_files:
            # Only deliveries of files get a spool folder: a hook delivery has nothing to download. Made
            # here, not once at start, so that a disk problem is an attempt's (retried) failure.
            folder = await spool.enter_async_context(spool_folder())
            files = await tools.fetcher.fetch_all(
                command, folder, destination.total_limit(), preflight=integration.preflight
            )
        job = Job(command=command, integration=integration, options=plain, files=files)
        try:
            return await asyncio.wait_for(destination.deliver(job), settings.destination_timeout_seconds * 10), files
        except DeliveryError:
            raise
        except Exception:
            # A timeout or an error the adapter did not foresee leaves its connection in an unknown state.
            await destination.close()
            raise


@contextlib.asynccontextmanager
async def spool_folder() -> AsyncIterator[Path]:
    """A delivery's own folder for its downloads, removed after it in a thread: unlinking a command's
    files on the event loop held every other delivery and stage for as long as the disk took."""
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=settings.spool_dir, prefix="dlv-"))
    try:
        yield folder
    finally:
        # Shielded: a cancelled attempt still leaves no files behind.
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True))


async def record(
    command: DeliveryCommand,
    started: datetime,
    *,
    outcome: str,
    error: str | None = None,
    sent: int = 0,
    final: bool = True,
    files: list[dict[str, Any]] | None = None,
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
            "replay": command.replay,
            "redrive": command.redrive,
            "reconcile": command.reconcile,
            "files": files or [],
        }
    )
    doc = result.model_dump(mode="json")
    await publish(delivery_results_topic, [(delivery_key(command), doc)])
    await fold_result_into_view(delivery_key(command), doc)
    metrics.record_attempt(
        integration_type=command.integrationType,
        outcome=outcome,
        final=final,
        started=started,
        finished=result.finishedAt,
        sent=sent,
        delivery_id=command.deliveryId,
        occurred_at=command.occurredAt,
        replay=command.replay is not None,
    )
    return result

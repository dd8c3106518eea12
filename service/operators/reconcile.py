"""Reconciliation, run: read a window of delivery results, ask each destination what it still holds,
send again what it lost (planning/reconcile.py decides).

Used by the CLI and by the operator API's jobs (reconcile_jobs.py). Reading uses the replay's
group-less consumer (the workers' offsets never move); each destination is asked only about the names
its deliveries wrote; a destination that refuses to answer is an error of that integration, and the
others are still checked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from service.catalog import Catalog
from service.contracts import DeliveryCommand, Integration
from service.destinations.failures import classify_failure
from service.destinations.inspect import clean_leftovers, inspect
from service.destinations.pool import DestinationPool
from service.kafka_admin import client_options
from service.netpolicy import NetPolicy, lookup_from_environment
from service.operators.integration_store import read_integrations
from service.operators.replay import Progress, read_window
from service.planning.commands import delivery_key
from service.planning.reconcile import (
    CHECKABLE,
    Deliveries,
    Problem,
    ReconcileFilter,
    integration_figures,
    problems,
    reconcile_matches,
    resent,
    stale_before,
)
from service.planning.replay import Window
from service.secrets import SecretBox, SecretKeyError, scrub
from service.settings import Settings
from service.smtp_relay import SmtpRelay

# A delivery's command is on `deliveries` before its first attempt; a retry or a re-drive may deliver
# it much later. Commands are looked for this long before the window's start.
COMMAND_LOOKBACK = timedelta(days=2)
# Records parsed between two yields to the event loop: inside a worker the run shares the loop with the
# stages, and one fetch can hand over thousands of records at once.
YIELD_EVERY = 500
READING, CHECKING, RESENDING = "reading delivery-results", "checking destinations", "sending again"
# Where a run is: its phase, and how far into it (done of total).
Steps = Callable[[str, int, int], None]


def new_reconcile_id() -> str:
    return f"rcn-{uuid.uuid4().hex[:12]}"


@dataclass
class ReconcileTally:
    id: str = field(default_factory=new_reconcile_id)
    dry_run: bool = False
    deliveries: int = 0
    files: int = 0
    found: list[Problem] = field(default_factory=list)
    resent: int = 0
    not_checkable: int = 0
    without_files: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # integration id -> what went wrong
    cleaned: list[tuple[str, str]] = field(default_factory=list)  # (integration id, leftover's name or key)
    # Per integration: its type, its deliveries of the window, files asked about, deliveries sent again.
    types: dict[str, str] = field(default_factory=dict)
    delivery_counts: dict[str, int] = field(default_factory=dict)
    file_counts: dict[str, int] = field(default_factory=dict)
    resent_of: dict[str, int] = field(default_factory=dict)

    def count(self, verdict: str) -> int:
        return sum(1 for p in self.found if p.verdict == verdict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dryRun": self.dry_run,
            "deliveries": self.deliveries,
            "files": self.files,
            "missing": self.count("missing"),
            "different": self.count("different"),
            "resent": self.resent,
            "notCheckable": self.not_checkable,
            "withoutFiles": self.without_files,
            "errors": self.errors,
            "cleaned": [{"integrationId": i, "name": n} for i, n in self.cleaned],
            "integrations": [
                f.as_dict()
                for f in integration_figures(
                    self.types, self.delivery_counts, self.file_counts, self.found, self.resent_of, self.errors
                )
            ],
            "problems": [
                {
                    "integrationId": p.integration_id,
                    "deliveryId": p.delivery_id,
                    "name": p.name,
                    "problem": p.verdict,
                    "expectedBytes": p.expected_bytes,
                    "foundBytes": p.found_bytes,
                }
                for p in self.found
            ],
        }


async def _delivered(
    settings: Settings, catalog: Catalog, chosen: ReconcileFilter, since: datetime, progress: Progress | None
) -> Deliveries:
    folded = Deliveries()
    seen = 0
    async for record in read_window(settings, catalog["delivery-results"].name, Window(since=since), progress):
        seen += 1
        if seen % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            doc = orjson.loads(record.value or b"null")
        except orjson.JSONDecodeError:
            continue
        if reconcile_matches(chosen, doc):
            folded.add(doc)
    return folded


async def _commands(
    settings: Settings, catalog: Catalog, since: datetime, wanted: set[str]
) -> dict[str, DeliveryCommand]:
    """The wanted deliveries' commands, from `deliveries` (the first attempt's command)."""
    found: dict[str, DeliveryCommand] = {}
    seen = 0
    async for record in read_window(settings, catalog["deliveries"].name, Window(since=since - COMMAND_LOOKBACK)):
        seen += 1
        if seen % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            doc = orjson.loads(record.value or b"null")
            if isinstance(doc, dict) and doc.get("deliveryId") in wanted:
                found[doc["deliveryId"]] = DeliveryCommand.model_validate(doc)
        except (orjson.JSONDecodeError, ValidationError):
            continue
    return found


async def reconcile(
    settings: Settings,
    catalog: Catalog,
    chosen: ReconcileFilter,
    since: datetime,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    leftovers_before: datetime | None = None,
    steps: Steps | None = None,
    reconcile_id: str | None = None,
) -> ReconcileTally:
    """Check the window's deliveries, send again what a destination lost, and remove the service's own
    leftovers (temporary files, incomplete multipart uploads) of those names begun before
    `leftovers_before` (default: `stale_before`, when no attempt can still be writing them).

    `progress` follows the reading of delivery-results (the CLI's bar), `steps` every phase (an API job)."""
    tally = ReconcileTally(id=reconcile_id or new_reconcile_id(), dry_run=dry_run)
    step: Steps = steps or (lambda phase, done, total: None)

    def reading(done: int, total: int) -> None:
        if progress:
            progress(done, total)
        step(READING, done, total)

    before = leftovers_before or stale_before(datetime.now(UTC), settings.destination_timeout_seconds)
    delivered = await _delivered(settings, catalog, chosen, since, reading)
    tally.deliveries = len(delivered.deliveries)
    tally.types = dict(delivered.types)
    for integration_id in delivered.deliveries.values():
        tally.delivery_counts[integration_id] = tally.delivery_counts.get(integration_id, 0) + 1
    tally.without_files = len(delivered.without_files)
    tally.not_checkable = sum(1 for i in delivered.deliveries.values() if delivered.types[i] not in CHECKABLE)
    configs = await read_integrations(settings, catalog)
    try:
        box: SecretBox | None = SecretBox(settings.secret_keys.get_secret_value())
    except SecretKeyError:
        box = None  # integrations with secrets then fail to open: an error of theirs, reported
    pool = DestinationPool(
        settings, SmtpRelay(settings), NetPolicy(settings.allow_private_destinations, lookup_from_environment())
    )
    checkable = [
        (i, named) for i, named in sorted(delivered.files.items()) if delivered.types[i] in CHECKABLE and named
    ]
    step(CHECKING, 0, len(checkable))
    try:
        for checked, (integration_id, named) in enumerate(checkable):
            step(CHECKING, checked, len(checkable))
            plain: dict[str, Any] = {}
            try:
                doc = configs.get(integration_id)
                if doc is None:
                    raise LookupError("the integration is deleted")
                integration = Integration.model_validate(doc)
                plain = box.decrypt_settings(integration.settings) if box else dict(integration.settings)
                destination = await pool.get(integration, plain)
                held = await inspect(destination, named)
            except Exception as exc:  # one destination's refusal is its error; the others are still checked
                message = str(exc) if isinstance(exc, LookupError) else classify_failure(exc).message
                tally.errors[integration_id] = scrub(message, plain)
                continue
            tally.files += len(named)
            tally.file_counts[integration_id] = len(named)
            tally.found.extend(problems(named.values(), held))
            try:
                left = await clean_leftovers(destination, named, before, dry_run=dry_run)
            except Exception as exc:  # a store that refuses the clean-up (a permission) keeps its check
                failure = classify_failure(exc).message
                tally.errors[integration_id] = scrub(f"removing leftovers: {failure}", plain)
                continue
            tally.cleaned.extend((integration_id, name) for name in left)
        step(CHECKING, len(checkable), len(checkable))
    finally:
        await pool.close()
    if dry_run or not tally.found:
        return tally
    wanted = {p.delivery_id for p in tally.found}
    step(RESENDING, 0, len(wanted))
    commands = await _commands(settings, catalog, since, wanted)
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for delivery_id in sorted(wanted):
            command = commands.get(delivery_id)
            if command is None:
                tally.errors[delivered.deliveries[delivery_id]] = (
                    f"delivery {delivery_id}: its command is no longer on deliveries, so it cannot be sent again"
                )
                continue
            again = resent(command, tally.id, delivered.attempts.get(delivery_id, 1), now)
            await producer.send_and_wait(
                catalog["deliveries-retry"].name,
                key=delivery_key(again).encode(),
                value=again.model_dump_json().encode(),
            )
            tally.resent += 1
            integration_id = delivered.deliveries[delivery_id]
            tally.resent_of[integration_id] = tally.resent_of.get(integration_id, 0) + 1
            step(RESENDING, tally.resent, len(wanted))
    finally:
        await producer.stop()
    return tally

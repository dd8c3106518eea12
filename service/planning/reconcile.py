"""Reconciliation, decided: which files a destination should still hold, whether what it holds is them,
and which deliveries go out again.

A destination folder cleaned by hand, a bucket lifecycle rule, a server restored from an old backup:
the service said "delivered" and the files are gone. `outbound reconcile` reads the delivery results
of a window (each delivered attempt lists its files with bytes and SHA-256), asks each destination
what it holds under those names (service/destinations/inspect.py) and sends again, under the same
delivery id and names, each delivery a file of which is missing or different. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from service.contracts import DeliveryCommand
from service.planning.replay import new_series

# Destinations that can be asked what they hold; e-mail and catch hooks cannot.
CHECKABLE = frozenset({"local", "sftp", "s3", "azure"})
# The hidden name a local or SFTP upload is written under before it is renamed (`.<name>.<uuid>.part`).
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{32}\.part$")
Verdict = Literal["ok", "missing", "different"]
# What reconcile did with one integration: its files matched, some did not, it cannot be listed (e-mail,
# hooks), its destination refused to answer, or its deliveries were recorded without a file list.
Outcome = Literal["ok", "problems", "not checkable", "error", "not checked"]


@dataclass(frozen=True)
class ReconcileFilter:
    tenant: str
    integration_id: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class Expected:
    """A file the destination should hold: as the latest delivery that wrote its name handed it over."""

    integration_id: str
    integration_type: str
    delivery_id: str
    name: str
    bytes: int
    sha256: str
    finished_at: str
    attempt: int


@dataclass(frozen=True)
class Found:
    """What a destination holds under a name: its size, and its SHA-256 where the store keeps one.

    `hash_kept`: the service stores the SHA-256 with every file it writes there (S3 and Azure metadata),
    so an object without it was written by someone else."""

    bytes: int
    sha256: str | None = None
    hash_kept: bool = False


def reconcile_matches(f: ReconcileFilter, doc: Any) -> bool:
    """A delivery result of the window that is checked: delivered, of the tenant (and integration, order)."""
    if not isinstance(doc, dict) or doc.get("outcome") != "delivered" or doc.get("tenant") != f.tenant:
        return False
    if f.integration_id is not None and doc.get("integrationId") != f.integration_id:
        return False
    return f.order_id is None or doc.get("orderId") == f.order_id


@dataclass
class Deliveries:
    """The delivered results of a window, folded: per integration, each name's latest file."""

    files: dict[str, dict[str, Expected]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # integration id -> type
    deliveries: dict[str, str] = field(default_factory=dict)  # delivery id -> integration id
    attempts: dict[str, int] = field(default_factory=dict)  # delivery id -> its latest attempt number
    without_files: set[str] = field(default_factory=set)  # delivered by a worker that did not list files

    def add(self, doc: dict[str, Any]) -> None:
        delivery, integration = str(doc["deliveryId"]), str(doc["integrationId"])
        self.types[integration] = str(doc.get("integrationType") or "")
        self.deliveries[delivery] = integration
        attempt = int(doc.get("attempt") or 1)
        self.attempts[delivery] = max(attempt, self.attempts.get(delivery, 0))
        listed = [f for f in doc.get("files") or [] if isinstance(f, dict) and "name" in f]
        if not listed and self.types[integration] in CHECKABLE:
            self.without_files.add(delivery)
        named = self.files.setdefault(integration, {})
        finished = str(doc.get("finishedAt") or "")
        for f in listed:
            known = named.get(f["name"])
            # Deliveries of one order (created, updated, cancelled) write the same names: the latest wins,
            # so an older delivery's file is never taken for one the destination lost.
            if known is None or finished >= known.finished_at:
                named[f["name"]] = Expected(
                    integration, self.types[integration], delivery, f["name"], int(f["bytes"]), str(f["sha256"]),
                    finished, attempt,
                )  # fmt: skip


def judge(expected: Expected, found: Found | None) -> Verdict:
    """Missing, different (another size, or another SHA-256 where the store keeps one, or none where
    the service always leaves one), or ok."""
    if found is None:
        return "missing"
    if found.bytes != expected.bytes:
        return "different"
    if found.sha256 is None:
        return "different" if found.hash_kept else "ok"
    return "ok" if found.sha256 == expected.sha256 else "different"


@dataclass(frozen=True)
class Problem:
    integration_id: str
    delivery_id: str
    name: str
    verdict: Verdict
    expected_bytes: int
    found_bytes: int | None


def problems(expected: Iterable[Expected], found: Mapping[str, Found | None]) -> list[Problem]:
    """Every expected file (of one integration) that the destination lost or changed."""
    out = []
    for e in expected:
        seen = found.get(e.name)
        verdict = judge(e, seen)
        if verdict != "ok":
            out.append(Problem(e.integration_id, e.delivery_id, e.name, verdict, e.bytes, seen.bytes if seen else None))
    return out


def resent(command: DeliveryCommand, reconcile_id: str, latest_attempt: int, now: datetime) -> DeliveryCommand:
    """The delivery's command as a new series on the retry path, due now: same delivery id, so the same
    names (and webhook-id) and the destination overwrites; its attempts numbered on after the latest."""
    return new_series(command, max(command.attempt, latest_attempt) + 1, now, reconcile=reconcile_id)


def own_temporary(entry: str, names: Iterable[str]) -> str | None:
    """The final name `entry` is one of the service's temporary files of, if it is one of a name a
    delivery of the window wrote (anything else in the folder is left alone)."""
    match = TEMPORARY.match(entry)
    if match is None:
        return None
    name = match.group("name")
    return name if name in set(names) else None


def stale_before(now: datetime, destination_timeout_seconds: float) -> datetime:
    """Temporary files and multipart uploads begun before this are left over: an attempt's transfer is
    cut off after ten destination timeouts (streams/stages/deliver.py), so twice that has passed."""
    return now - timedelta(seconds=2 * 10 * destination_timeout_seconds)


@dataclass(frozen=True)
class IntegrationFigures:
    """One integration's share of a run's figures, as the page shows them beside each other."""

    integration_id: str
    integration_type: str
    deliveries: int
    files: int
    missing: int
    different: int
    resent: int
    outcome: Outcome
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "integrationId": self.integration_id,
            "integrationType": self.integration_type,
            "deliveries": self.deliveries,
            "files": self.files,
            "missing": self.missing,
            "different": self.different,
            "resent": self.resent,
            "outcome": self.outcome,
            "error": self.error,
        }


def integration_figures(
    types: Mapping[str, str],
    deliveries: Mapping[str, int],
    files: Mapping[str, int],
    found: Iterable[Problem],
    resent_of: Mapping[str, int],
    errors: Mapping[str, str],
) -> list[IntegrationFigures]:
    """Each integration of the run (by id) with its own counts and what came of checking it."""
    found = list(found)
    out = []
    for integration_id in sorted(types):
        kind = types[integration_id]
        missing = sum(1 for p in found if p.integration_id == integration_id and p.verdict == "missing")
        different = sum(1 for p in found if p.integration_id == integration_id and p.verdict == "different")
        outcome: Outcome
        if kind not in CHECKABLE:
            outcome = "not checkable"
        elif integration_id in errors:
            outcome = "error"
        elif not files.get(integration_id):
            outcome = "not checked"
        else:
            outcome = "problems" if missing or different else "ok"
        out.append(
            IntegrationFigures(
                integration_id,
                kind,
                deliveries.get(integration_id, 0),
                files.get(integration_id, 0),
                missing,
                different,
                resent_of.get(integration_id, 0),
                outcome,
                errors.get(integration_id),
            )
        )
    return out

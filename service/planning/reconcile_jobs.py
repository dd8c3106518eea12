"""Reconciliation as a job of the operator API, decided: a job's id (it names the worker that runs
it), where a poll for it is answered, whether a new one may start, what a job answers, and which
finished jobs are kept. Pure: no I/O; the clock and the group's members are passed in.

A job runs in the memory of one worker. Its id carries that worker's tag (a hash of its canonical
URL, so no address shows) and the worker's run (random at each start), so any worker tells where a
poll goes: here, to the member with that tag, or nowhere because the worker that ran it is gone.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

JOB_ID = re.compile(r"^rcn-(?P<worker>[0-9a-f]{8})-(?P<run>[0-9a-f]{8})-(?P<serial>[0-9a-f]{12})$")
# A worker runs at most this many jobs at once, and one per tenant: each lists destinations and reads
# a window of delivery-results beside the worker's own stages.
MAX_RUNNING = 2
# Finished jobs a worker keeps for late polls: at most this many, none longer than this.
KEEP_FINISHED = 50
KEEP_FOR = timedelta(hours=24)
# A finished job keeps at most this many problems and leftovers listed (its figures count them all).
MAX_LISTED = 1000

JobState = Literal["running", "done", "failed"]


def worker_tag(url: str) -> str:
    """A short, stable name of the worker at `url` (its host and port), the same on every worker."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return hashlib.sha256(f"{(parts.hostname or '').lower()}:{port}".encode()).hexdigest()[:8]


def new_run() -> str:
    return secrets.token_hex(4)


def new_job_id(own_url: str, run: str) -> str:
    return f"rcn-{worker_tag(own_url)}-{run}-{secrets.token_hex(6)}"


def poll_path(job_id: str) -> str:
    return f"/v1/reconciliations/{job_id}"


@dataclass(frozen=True)
class Here:
    """The job is (or was) this worker's: its own jobs answer."""


@dataclass(frozen=True)
class Elsewhere:
    url: str


@dataclass(frozen=True)
class Gone:
    """The worker that ran the job has stopped: left the group, or started again since."""


@dataclass(frozen=True)
class NoSuchJob:
    """Not a job id at all."""


Place = Here | Elsewhere | Gone | NoSuchJob


def place(job_id: str, own_url: str, own_run: str, members: Iterable[str]) -> Place:
    """Where a poll for `job_id` is answered, given this worker's URL and run and the group's members'
    URLs. It depends on the id alone, never on whose job it is, so it tells no one of another's job."""
    parsed = JOB_ID.match(job_id)
    if parsed is None:
        return NoSuchJob()
    if parsed["worker"] == worker_tag(own_url):
        return Here() if parsed["run"] == own_run else Gone()
    for url in members:
        if worker_tag(url) == parsed["worker"]:
            return Elsewhere(url)
    return Gone()


@dataclass(frozen=True)
class Asked:
    """What a job checks: the CLI's options."""

    tenant: str
    since: datetime
    integration_id: str | None = None
    order_id: str | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "integrationId": self.integration_id,
            "orderId": self.order_id,
            "since": self.since.isoformat(),
            "dryRun": self.dry_run,
        }


@dataclass
class Job:
    id: str
    asked: Asked
    started_at: datetime
    state: JobState = "running"
    phase: str = "starting"
    done: int = 0
    total: int = 0
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    report: list[str] = field(default_factory=list)
    reason: str | None = None

    def step(self, phase: str, done: int, total: int) -> None:
        self.phase, self.done, self.total = phase, done, total

    def finish(self, result: dict[str, Any], report: list[str], now: datetime) -> None:
        self.state, self.result, self.report, self.finished_at = "done", result, report, now

    def fail(self, reason: str, now: datetime) -> None:
        self.state, self.reason, self.finished_at = "failed", reason, now

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "jobId": self.id,
            "state": self.state,
            **self.asked.as_dict(),
            "startedAt": self.started_at.isoformat(),
            "poll": poll_path(self.id),
        }
        if self.state == "running":
            body["progress"] = {"phase": self.phase, "done": self.done, "total": self.total}
            return body
        body["finishedAt"] = self.finished_at.isoformat() if self.finished_at else None
        if self.state == "done":
            body.update(result=self.result, report=self.report)
        else:
            body["reason"] = self.reason
        return body


def start_refusal(
    running: Iterable[Job], tenant: str, max_running: int = MAX_RUNNING
) -> tuple[int, dict[str, Any]] | None:
    """Why a job for `tenant` may not start now (status and body), or None. A tenant's running job
    is named to whoever may start one for that tenant, and to no one else."""
    running = [j for j in running if j.state == "running"]
    same = next((j for j in running if j.asked.tenant == tenant), None)
    if same is not None:
        return 409, {
            "error": f"a reconciliation of tenant {tenant} is running: job {same.id}; follow it or wait for it",
            "jobId": same.id,
            "poll": poll_path(same.id),
        }
    if len(running) >= max_running:
        return 429, {
            "error": f"this worker runs {len(running)} reconciliations, the most at once; try again when one is done"
        }
    return None


def to_forget(
    jobs: Iterable[Job], now: datetime, keep: int = KEEP_FINISHED, keep_for: timedelta = KEEP_FOR
) -> list[str]:
    """The finished jobs no longer kept: older than `keep_for`, or beyond the newest `keep`."""
    finished = sorted((j for j in jobs if j.finished_at is not None), key=lambda j: j.finished_at or now, reverse=True)
    return [j.id for n, j in enumerate(finished) if n >= keep or now - (j.finished_at or now) > keep_for]


def trimmed(result: dict[str, Any], limit: int = MAX_LISTED) -> dict[str, Any]:
    """A run's figures with at most `limit` problems and leftovers listed; the figures still count
    every one, and `problemsLeftOut` / `cleanedLeftOut` say how many are not listed."""
    out = dict(result)
    for name in ("problems", "cleaned"):
        items = list(result.get(name) or [])
        if len(items) > limit:
            out[name] = items[:limit]
            out[f"{name}LeftOut"] = len(items) - limit
    return out

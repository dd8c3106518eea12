"""The operator API's reconciliation jobs on this worker: each runs the CLI's reconcile in the
background, its progress and then its figures kept in memory for the polls
(planning/reconcile_jobs.py decides ids, admission and what is kept)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from service.app import app, catalog, settings
from service.operators.reconcile import reconcile
from service.operators.reconcile_report import report_lines
from service.planning.reconcile import ReconcileFilter
from service.planning.reconcile_jobs import Asked, Job, new_job_id, new_run, start_refusal, to_forget, trimmed

log = logging.getLogger(__name__)

# This process's run: a worker started again at the same address tells its earlier jobs from unknown ones.
RUN = new_run()
jobs: dict[str, Job] = {}
_tasks: dict[str, asyncio.Task[None]] = {}


def own_url() -> str:
    return str(app.conf.canonical_url)


def members() -> list[str]:
    """The URLs of the group's workers, as the last rebalance shared them out."""
    return [str(url) for url in app.assignor.tables_metadata()]


def forget_old() -> None:
    for job_id in to_forget(jobs.values(), datetime.now(UTC)):
        jobs.pop(job_id, None)


def refusal_to_start(tenant: str) -> tuple[int, dict[str, object]] | None:
    return start_refusal(jobs.values(), tenant)


def start(asked: Asked) -> Job:
    """A new job, running: its first answer is `running` at once."""
    forget_old()
    job = Job(new_job_id(own_url(), RUN), asked, datetime.now(UTC))
    jobs[job.id] = job
    task = asyncio.get_running_loop().create_task(_run(job))
    _tasks[job.id] = task
    task.add_done_callback(lambda _: _tasks.pop(job.id, None))
    log.info("reconcile job started", extra={"reconcile": job.id, **asked.as_dict()})
    return job


def failure_reason(exc: BaseException) -> str:
    """What a job that could not run says: the broker's or a topic's trouble by name; anything else by
    its type (the log has the rest; exception text may quote a setting)."""
    if isinstance(exc, LookupError):
        return str(exc)
    if isinstance(exc, KafkaError):
        return f"the broker: {type(exc).__name__}; try again"
    return f"{type(exc).__name__}: the worker's log says more"


async def _run(job: Job) -> None:
    asked = job.asked
    try:
        tally = await reconcile(
            settings,
            catalog,
            ReconcileFilter(asked.tenant, asked.integration_id, asked.order_id),
            asked.since,
            dry_run=asked.dry_run,
            steps=job.step,
            reconcile_id=job.id,
        )
    except asyncio.CancelledError:
        job.fail("the worker stopped before the job was done; start it again", datetime.now(UTC))
        raise
    except Exception as exc:  # the job's own failure: answered to its polls, never the worker's
        log.warning("reconcile job failed", exc_info=True, extra={"reconcile": job.id, "tenant": asked.tenant})
        job.fail(failure_reason(exc), datetime.now(UTC))
        return
    result = trimmed(tally.as_dict())
    job.finish(result, report_lines(result), datetime.now(UTC))
    figures = {k: result[k] for k in ("deliveries", "files", "missing", "different", "resent", "notCheckable")}
    log.info(
        "reconcile job done",
        extra={"reconcile": job.id, "tenant": asked.tenant, **figures, "errors": len(result["errors"])},
    )


@app.before_stop
async def stop_jobs() -> None:
    """Running jobs end with the worker, their consumers and producers closed; a poll after that is
    answered as a job whose worker stopped."""
    running = list(_tasks.values())
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)

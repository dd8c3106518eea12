"""POST /v1/reconciliations (operate scope) starts `outbound reconcile` as a job; GET
/v1/reconciliations/{jobId} (read scope) answers how it goes and, once done, its figures and report.

A job runs on the worker that owns its tenant's row (so a tenant has one job at a time across the
workers); a poll reaching another worker is forwarded to the one its id names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust import web
from yarl import URL

from service.app import app
from service.operators import reconcile_jobs
from service.operators.auth import access, with_scope
from service.operators.owners import ANSWERED_BY, FORWARDED, forward, on_owner
from service.operators.replay_routes import held_to_tenant, json_body
from service.operators.request_checks import Refused, checked_tenant
from service.planning.access import Access
from service.planning.reconcile_jobs import (
    KEEP_FINISHED,
    KEEP_FOR,
    Asked,
    Elsewhere,
    Gone,
    Here,
    place,
    poll_path,
)
from service.planning.replay import BadRequest, parse_when
from service.streams.stages.order_view import tenant_table
from service.streams.state.live_views import integrations_view

RECONCILE_FIELDS = {"tenant", "integrationId", "since", "orderId", "dryRun"}
DEFAULT_SINCE = "7d"


def reconcile_request(who: Access, body: dict[str, Any]) -> Asked:
    """The body as what a job checks, or Refused: 400 for what is malformed, 404 for an integration
    the tenant does not have (another tenant's answers the same as one that does not exist)."""
    tenant = body.get("tenant")
    if tenant is None:
        raise Refused(400, "tenant: required")
    checked_tenant(tenant)
    now = datetime.now(UTC)
    try:
        since = parse_when(body.get("since") or DEFAULT_SINCE, now)
    except BadRequest as exc:
        raise Refused(400, f"since: {exc}") from exc
    if since >= now:
        raise Refused(400, "since must be in the past")
    order_id = body.get("orderId")
    if order_id is not None and not order_id.strip():
        raise Refused(400, "orderId must not be empty")
    integration_id = body.get("integrationId")
    if integration_id is not None:
        found = integrations_view.get(integration_id)
        if found is None or found.tenant != tenant or not who.sees(found.tenant):
            raise Refused(404, f"tenant {tenant} has no integration {integration_id!r}")
    return Asked(tenant, since, integration_id, order_id, bool(body.get("dryRun")))


def missing(job_id: str) -> Refused:
    kept = (
        f"finished jobs are kept {int(KEEP_FOR.total_seconds() // 3600)} hours, the last {KEEP_FINISHED} of each worker"
    )
    return Refused(404, f"no reconciliation job {job_id!r} ({kept})")


@app.page("/v1/reconciliations")
class Reconciliations(web.View):
    """Body: {"tenant", "integrationId"?, "since"? (default 7d), "orderId"?, "dryRun"?}; answers 202 with
    the job (`jobId`, `poll`, also in Location), 409 naming the tenant's running job, or 429."""

    async def post(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            who = access(request)
            asked = reconcile_request(who, held_to_tenant(who, json_body(await request.read(), RECONCILE_FIELDS)))

            async def local() -> web.Response:
                refused = reconcile_jobs.refusal_to_start(asked.tenant)
                if refused is not None:
                    return self.json(refused[1], status=refused[0])
                job = reconcile_jobs.start(asked)
                return self.json(job.answer(), status=202, headers={"Location": poll_path(job.id)})

            return await on_owner(self, request, tenant_table, asked.tenant, local)

        return await with_scope(self, request, "operate", handle)


@app.page("/v1/reconciliations/{job_id}")
class Reconciliation(web.View):
    """A job: `running` with its progress, `done` with the figures and report the CLI prints, or
    `failed` with a reason; 410 once the worker that ran it has stopped."""

    async def get(self, request: web.Request, job_id: str) -> web.Response:
        async def handle() -> web.Response:
            who = access(request)
            where = place(job_id, reconcile_jobs.own_url(), reconcile_jobs.RUN, reconcile_jobs.members())
            if isinstance(where, Here):
                reconcile_jobs.forget_old()
                job = reconcile_jobs.jobs.get(job_id)
                if job is None or not who.sees(job.asked.tenant):
                    raise missing(job_id)
                return self.json(job.answer(), headers={ANSWERED_BY: reconcile_jobs.own_url()})
            if isinstance(where, Gone):
                raise Refused(
                    410,
                    f"reconciliation job {job_id!r} is lost: the worker that ran it has stopped; start the check"
                    " again (what it had sent again by then is delivered as usual)",
                )
            if not isinstance(where, Elsewhere):
                raise missing(job_id)
            if request.headers.get(FORWARDED):
                raise Refused(503, "the workers are sharing out partitions; try again in a moment")
            try:
                return await forward(self, request, URL(where.url).with_path(request.url.path))
            except Refused as exc:
                raise Refused(
                    503,
                    f"the worker running reconciliation job {job_id!r} does not answer: if it has stopped, the job"
                    " is lost; start the check again",
                ) from exc

        return await with_scope(self, request, "read", handle)

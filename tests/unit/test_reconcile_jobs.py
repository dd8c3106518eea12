"""Reconciliation jobs of the operator API, decided (service/planning/reconcile_jobs.py): an id names the
worker that runs the job, a poll is answered there (or said lost when that worker stopped), one job
per tenant and a few per worker, finished jobs kept a while, and each integration's own figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.operators.reconcile_report import report_lines
from service.planning.reconcile import Problem, integration_figures
from service.planning.reconcile_jobs import (
    JOB_ID,
    Asked,
    Elsewhere,
    Gone,
    Here,
    Job,
    NoSuchJob,
    new_job_id,
    place,
    start_refusal,
    to_forget,
    trimmed,
    worker_tag,
)

T = datetime(2026, 12, 2, 18, tzinfo=UTC)
A, B = "http://10.0.0.1:6066", "http://10.0.0.2:6066"


def job(tenant: str, **fields) -> Job:
    return Job(fields.pop("id", new_job_id(A, "aaaa0000")), Asked(tenant, T - timedelta(days=7)), T, **fields)


def test_a_job_id_names_its_worker_and_run_and_every_worker_finds_it():
    job_id = new_job_id(A, "aaaa0000")
    assert JOB_ID.match(job_id) and "10.0.0.1" not in job_id  # no address shows
    assert worker_tag(A) == worker_tag("http://10.0.0.1:6066/") != worker_tag(B)
    assert place(job_id, A, "aaaa0000", [A, B]) == Here()
    assert place(job_id, B, "bbbb0000", [A, B]) == Elsewhere(A)
    # Its worker left the group, or started again at the same address: the job is gone, said so.
    assert place(job_id, B, "bbbb0000", [B]) == Gone()
    assert place(job_id, A, "cccc0000", [A, B]) == Gone()
    for bad in ("rcn-1", "../etc", job_id + "x", job_id.upper()):
        assert place(bad, A, "aaaa0000", [A, B]) == NoSuchJob()


def test_one_job_per_tenant_and_a_few_per_worker():
    assert start_refusal([], "acme") is None
    running = job("acme")
    status, body = start_refusal([running], "acme") or (0, {})
    assert status == 409 and body["jobId"] == running.id and body["poll"] == f"/v1/reconciliations/{running.id}"
    assert start_refusal([running], "other") is None
    status, body = start_refusal([running, job("b")], "other") or (0, {})
    assert status == 429 and "the most at once" in body["error"] and "acme" not in str(body)
    finished = job("acme")
    finished.finish({}, [], T)
    assert start_refusal([finished], "acme") is None


def test_finished_jobs_are_kept_a_while_and_a_bounded_count():
    old, kept, running = job("a"), job("b"), job("c")
    old.finish({}, [], T - timedelta(hours=25))
    kept.finish({}, [], T - timedelta(hours=1))
    assert to_forget([old, kept, running], T) == [old.id]
    many = [job("a") for _ in range(5)]
    for n, j in enumerate(many):
        j.fail("x", T - timedelta(minutes=n))
    assert to_forget(many, T, keep=3) == [many[3].id, many[4].id]  # the oldest go first


def test_a_job_answers_its_progress_then_its_figures_or_why_it_failed():
    j = job("acme", id="rcn-00000000-00000000-000000000000")
    j.step("reading delivery-results", 40, 100)
    running = j.answer()
    assert running["state"] == "running" and running["tenant"] == "acme" and running["dryRun"] is False
    assert running["progress"] == {"phase": "reading delivery-results", "done": 40, "total": 100}
    assert "result" not in running and running["poll"] == "/v1/reconciliations/rcn-00000000-00000000-000000000000"
    j.finish({"missing": 1}, ["reconcile …"], T)
    assert j.answer()["result"] == {"missing": 1} and j.answer()["report"] == ["reconcile …"]
    assert "progress" not in j.answer()
    f = job("acme")
    f.fail("topic t.delivery-results does not exist", T)
    assert (f.answer()["state"], f.answer()["reason"]) == ("failed", "topic t.delivery-results does not exist")


def test_a_kept_result_lists_a_bounded_number_of_problems_and_counts_them_all():
    problems = [{"name": f"f{n}"} for n in range(5)]
    result = {"missing": 5, "problems": problems, "cleaned": []}
    short = trimmed(result, limit=2)
    assert short["problems"] == problems[:2] and short["problemsLeftOut"] == 3 and short["missing"] == 5
    assert "cleanedLeftOut" not in short and trimmed(result) == result


def test_each_integration_has_its_own_figures_and_outcome():
    found = [
        Problem("s3", "d1", "a.pdf", "missing", 5, None),
        Problem("s3", "d1", "b.png", "different", 5, 4),
        Problem("local", "d2", "a.pdf", "missing", 5, None),
    ]
    figures = integration_figures(
        types={"s3": "s3", "local": "local", "hook": "zapier", "sftp": "sftp", "old": "azure"},
        deliveries={"s3": 1, "local": 2, "hook": 3, "sftp": 1, "old": 1},
        files={"s3": 6, "local": 12, "sftp": 6},
        found=found,
        resent_of={"s3": 1, "local": 1},
        errors={"sftp": "SFTP: login refused (username, password or key)"},
    )
    shown = {f.integration_id: (f.outcome, f.deliveries, f.files, f.missing, f.different, f.resent) for f in figures}
    assert shown == {
        "hook": ("not checkable", 3, 0, 0, 0, 0),
        "local": ("problems", 2, 12, 1, 0, 1),
        "old": ("not checked", 1, 0, 0, 0, 0),  # recorded without files by an older worker
        "s3": ("problems", 1, 6, 1, 1, 1),
        "sftp": ("error", 1, 6, 0, 0, 0),
    }
    assert [f.integration_id for f in figures] == sorted(shown)
    lines = report_lines(
        {
            "id": "rcn-1",
            "dryRun": False,
            "deliveries": 8,
            "files": 24,
            "missing": 2,
            "different": 1,
            "resent": 2,
            "notCheckable": 3,
            "withoutFiles": 1,
            "errors": {"sftp": "SFTP: login refused (username, password or key)"},
            "cleaned": [],
            "problems": [],
            "problemsLeftOut": 3,
            "integrations": [f.as_dict() for f in figures],
        }
    )
    assert lines[1:6] == [
        "  hook (zapier): 3 deliveries, not checkable",
        "  local (local): 2 deliveries, 12 files; missing 1, different 0, re-sent 1",
        "  old (azure): 1 deliveries, not checked: recorded without their files",
        "  s3 (s3): 1 deliveries, 6 files; missing 1, different 1, re-sent 1",
        "  sftp (sftp): 1 deliveries, 6 files; missing 0, different 0, re-sent 0; error (below)",
    ]
    assert "  … and 3 more problems, not listed here" in lines

"""Reconciliation decisions (service/planning/reconcile.py) and its report: which results are checked,
the latest delivery of a name wins, what counts as missing or different, how a delivery is sent again."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from service.destinations.base import UnsafeName
from service.destinations.inspect import NotCheckable, clean_leftovers, inspect
from service.destinations.local import LocalDestination
from service.netpolicy import NetPolicy
from service.operators.reconcile_report import report_lines
from service.planning.reconcile import (
    Deliveries,
    Expected,
    Found,
    ReconcileFilter,
    judge,
    own_temporary,
    problems,
    reconcile_matches,
    resent,
    stale_before,
)
from tests.events import delivery_command

T = datetime(2026, 12, 2, tzinfo=UTC)


def result(delivery: str, finished: str, files: list[tuple[str, int, str]], **extra) -> dict:
    return {
        "deliveryId": delivery,
        "integrationId": extra.pop("integrationId", "acme-s3"),
        "integrationType": extra.pop("integrationType", "s3"),
        "tenant": "acme",
        "orderId": "o1",
        "attempt": extra.pop("attempt", 1),
        "finishedAt": finished,
        "outcome": extra.pop("outcome", "delivered"),
        "files": [{"name": n, "bytes": b, "sha256": h} for n, b, h in files],
        **extra,
    }


def test_only_delivered_results_of_the_tenant_integration_and_order_are_checked():
    chosen = ReconcileFilter("acme", "acme-s3", "o1")
    assert reconcile_matches(chosen, result("d1", "t1", []))
    assert not reconcile_matches(chosen, result("d1", "t1", [], outcome="failed"))
    assert not reconcile_matches(chosen, {**result("d1", "t1", []), "tenant": "other"})
    assert not reconcile_matches(chosen, result("d1", "t1", [], integrationId="acme-sftp"))
    assert not reconcile_matches(chosen, {**result("d1", "t1", []), "orderId": "o2"})
    assert reconcile_matches(ReconcileFilter("acme"), result("d1", "t1", [], integrationId="x"))
    assert not reconcile_matches(chosen, ["not", "a", "result"])


def test_the_latest_delivery_of_a_name_is_what_the_destination_should_hold():
    folded = Deliveries()
    # order.created then order.updated of one order write the same names: the update is expected.
    folded.add(result("created", "2026-12-02T10:00:00Z", [("1022_Ticket.pdf", 10, "a" * 64)]))
    folded.add(result("updated", "2026-12-02T11:00:00Z", [("1022_Ticket.pdf", 12, "b" * 64)], attempt=3))
    folded.add(result("created", "2026-12-02T10:00:00Z", [("1022_Ticket.pdf", 10, "a" * 64)]))  # read twice
    [expected] = folded.files["acme-s3"].values()
    assert (expected.delivery_id, expected.bytes, expected.sha256) == ("updated", 12, "b" * 64)
    assert folded.attempts == {"created": 1, "updated": 3}
    folded.add(result("old", "2026-12-02T09:00:00Z", [], integrationId="acme-sftp", integrationType="sftp"))
    folded.add(result("hook", "2026-12-02T09:00:00Z", [], integrationId="acme-hook", integrationType="zapier"))
    assert folded.without_files == {"old"}  # a worker before file lists: not checkable, said so


def expected(size: int = 10, sha: str = "a" * 64) -> Expected:
    return Expected("acme-s3", "s3", "d1", "f.pdf", size, sha, "t", 1)


def test_missing_different_or_ok():
    assert judge(expected(), None) == "missing"
    assert judge(expected(), Found(11)) == "different"
    assert judge(expected(), Found(10, "b" * 64)) == "different"
    assert judge(expected(), Found(10, "a" * 64)) == "ok"
    assert judge(expected(), Found(10)) == "ok"  # a store without hashes (SFTP): the size is what tells
    # Where the service always leaves its hash (S3, Azure metadata), an object without one is not its own.
    assert judge(expected(), Found(10, None, hash_kept=True)) == "different"
    [problem] = problems([expected()], {"f.pdf": Found(3)})
    assert (problem.verdict, problem.expected_bytes, problem.found_bytes) == ("different", 10, 3)
    assert problems([expected()], {"f.pdf": Found(10, "a" * 64, hash_kept=True)}) == []


def test_a_delivery_is_sent_again_under_its_id_as_a_new_series_marked_as_a_reconciliation():
    command = delivery_command(integrationId="acme-s3", integrationType="s3", createdAt=T, redrive="rdv-1")
    again = resent(command, "rcn-1", latest_attempt=2, now=T)
    assert (again.deliveryId, again.files, again.reconcile, again.redrive) == ("d1", command.files, "rcn-1", None)
    assert (again.attempt, again.seriesStart, again.dueAt, again.errors) == (3, 3, None, [])


def test_the_report_says_every_figure_and_each_problem_and_error():
    tally = {
        "id": "rcn-1",
        "dryRun": True,
        "deliveries": 3,
        "files": 12,
        "missing": 1,
        "different": 1,
        "resent": 0,
        "notCheckable": 1,
        "withoutFiles": 0,
        "errors": {"acme-sftp": "SFTP: permission denied"},
        "cleaned": [{"integrationId": "acme-s3", "name": "p/c.dst"}],
        "problems": [
            {"integrationId": "acme-s3", "name": "a.pdf", "problem": "missing", "expectedBytes": 5, "foundBytes": None},
            {"integrationId": "acme-s3", "name": "b.png", "problem": "different", "expectedBytes": 5, "foundBytes": 4},
        ],
    }
    assert report_lines(tally) == [
        "reconcile rcn-1: checked 3 deliveries, 12 files; missing 1, different 1, re-sent nothing (dry run), "
        "not checkable 1, errors 1, cleaned 1 (dry run: found, kept)",
        "  missing: acme-s3 a.pdf",
        "  different: acme-s3 b.png (4 bytes, 5 delivered)",
        "  cleaned: acme-s3 p/c.dst (the service's leftover)",
        "  error: acme-sftp: SFTP: permission denied",
    ]


async def test_a_local_folder_is_asked_by_name_with_size_and_sha256(tmp_path):
    root = tmp_path / "deliveries"
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "kept.pdf").write_bytes(b"kept")
    (root / "acme" / "other-application.txt").write_bytes(b"not ours")  # never looked at: no listing
    destination = LocalDestination({"directory": "acme"}, NetPolicy(True), root)
    found = await inspect(destination, ["kept.pdf", "gone.pdf"])
    assert found == {"kept.pdf": Found(4, hashlib.sha256(b"kept").hexdigest()), "gone.pdf": None}
    with pytest.raises(UnsafeName):
        await inspect(destination, ["../escape.pdf"])  # names are checked as where files are written
    with pytest.raises(NotCheckable):
        await inspect(object(), ["a.pdf"])  # type: ignore[arg-type]


def test_only_the_services_own_temporary_files_of_the_windows_names_are_leftovers():
    uuid_hex = "0123456789abcdef0123456789abcdef"
    assert own_temporary(f".1022_Front.dst.{uuid_hex}.part", ["1022_Front.dst"]) == "1022_Front.dst"
    assert own_temporary(f".other.dst.{uuid_hex}.part", ["1022_Front.dst"]) is None  # not of the window's names
    assert own_temporary(".1022_Front.dst.part", ["1022_Front.dst"]) is None  # not the service's pattern
    assert own_temporary("1022_Front.dst", ["1022_Front.dst"]) is None
    # Ten destination timeouts bound an attempt's transfer: twice that is when nothing can still be writing.
    assert stale_before(T, 120) == datetime(2026, 12, 1, 23, 20, tzinfo=UTC)


async def test_a_local_folders_stale_leftovers_are_removed_and_fresh_ones_kept(tmp_path):
    root = tmp_path / "deliveries"
    folder = root / "acme"
    folder.mkdir(parents=True)
    stale, fresh = folder / f".f.pdf.{'a' * 32}.part", folder / f".f.pdf.{'b' * 32}.part"
    unrelated = folder / f".g.pdf.{'c' * 32}.part"  # of a name this run does not know: left alone
    for path in (stale, fresh, unrelated):
        path.write_bytes(b"half")
    os.utime(stale, (1_000_000, 1_000_000))
    os.utime(unrelated, (1_000_000, 1_000_000))
    destination = LocalDestination({"directory": "acme"}, NetPolicy(True), root)
    before = datetime.fromtimestamp(2_000_000, UTC)
    assert await clean_leftovers(destination, ["f.pdf"], before, dry_run=True) == [stale.name]
    assert stale.exists()  # a dry run finds, keeps
    assert await clean_leftovers(destination, ["f.pdf"], before, dry_run=False) == [stale.name]
    assert not stale.exists() and fresh.exists() and unrelated.exists()


async def test_reading_a_window_lets_the_workers_stages_run_while_it_parses(monkeypatch):
    from service.operators import reconcile as run

    records = [SimpleNamespace(value=orjson.dumps(result(f"d{n}", "t1", []))) for n in range(2000)]

    async def window(settings, topic, window, progress=None):
        for record in records:  # one fetch hands over every record at once: no pause of its own
            yield record

    monkeypatch.setattr(run, "read_window", window)
    turns = 0

    async def stage() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    beside = asyncio.create_task(stage())
    await asyncio.sleep(0)
    before = turns
    folded = await run._delivered(
        None, {"delivery-results": SimpleNamespace(name="t")}, ReconcileFilter("acme"), T, None
    )
    beside.cancel()
    assert len(folded.deliveries) == 2000
    assert turns - before >= 2000 // run.YIELD_EVERY - 1  # the other task ran while the window was parsed

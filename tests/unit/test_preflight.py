"""Pre-flight checks (service/planning/preflight.py): good files of every type pass however their
bytes are chunked; each bad kind fails with a one-line reason naming the file and the check; the modes
choose which checks run; what the check keeps in memory is bounded whatever the file's size."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyembroidery
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.contracts import AttemptError, Integration
from service.planning.notifications import failure_notification
from service.planning.preflight import (
    HEAD_BYTES,
    JSON_PARSE_BYTES,
    TAIL_BYTES,
    FileCheck,
    PreflightFailed,
    declared_format,
    upstream_advice,
)
from tests.events import delivery_command
from tests.files import BAD_FILES, MiB, big_parts, dst_file, good_file

TYPES = ["pdf", "png", "jpg", "jpeg", "svg", "json", "dst", "txt"]
MIMES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "svg": "image/svg+xml",
    "json": "application/json",
    "dst": "application/octet-stream",
    "txt": "text/plain",
}


def judge(data: bytes, file_type: str, mode: str = "strict", chunk: int = MiB, announced: int | None = None) -> str:
    """'ok', or the error text of the failed check."""
    check = FileCheck(f"1022_ID_o1_R_r1_Front.{file_type}", file_type, MIMES.get(file_type), mode)  # type: ignore[arg-type]
    try:
        for start in range(0, len(data), chunk):
            check.feed(data[start : start + chunk])
        check.finish(arrived=len(data), announced=len(data) if announced is None else announced)
    except PreflightFailed as failed:
        assert failed.file == f"1022_ID_o1_R_r1_Front.{file_type}" and failed.check
        return str(failed)
    return "ok"


@pytest.mark.parametrize("file_type", TYPES)
def test_good_files_of_every_type_pass(file_type):
    assert judge(good_file(file_type, b"seed"), file_type) == "ok"


@settings(max_examples=60, deadline=None)
@given(file_type=st.sampled_from(TYPES), chunk=st.integers(min_value=1, max_value=5000), seed=st.binary(max_size=8))
def test_the_verdict_does_not_depend_on_how_the_bytes_arrive(file_type, chunk, seed):
    good = good_file(file_type, seed)
    assert judge(good, file_type, chunk=chunk) == "ok"
    cut = good[: len(good) * 3 // 4]
    if file_type != "txt":
        assert judge(cut, file_type, chunk=chunk) == judge(cut, file_type)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_each_bad_file_fails_with_a_one_line_reason_naming_the_file_and_the_check(kind):
    file_type, data, reason = BAD_FILES[kind]
    error = judge(data, file_type)
    assert error.startswith(f"pre-flight: 1022_ID_o1_R_r1_Front.{file_type}: "), error
    assert reason in error and "\n" not in error and len(error) < 300, error


def test_basic_looks_for_empty_files_and_error_pages_only_and_off_for_nothing():
    for kind, (file_type, data, _) in BAD_FILES.items():
        expected_basic = kind in ("empty", "html-error-page", "json-error-answer")
        assert (judge(data, file_type, "basic") != "ok") == expected_basic, kind
        assert judge(data, file_type, "off") == "ok", kind
    assert judge(b"<html><body>Not found</body></html>", "txt", "basic").endswith(
        "an HTML page where a .txt file was announced: an error page served with status 200?"
    )


def test_a_length_other_than_announced_fails_in_strict_mode_only():
    good = good_file("pdf", b"x")
    error = judge(good, "pdf", announced=len(good) * 2)
    assert error.endswith(
        f"{len(good)} of the {2 * len(good)} bytes the asset host announced (Content-Length) arrived: cut off?"
    )
    assert judge(good, "pdf", "basic", announced=len(good) * 2) == "ok"
    check = FileCheck("a.pdf", "pdf", None, "strict")
    assert check.cut_off(10, 20) is not None and check.cut_off(20, 20) is None and check.cut_off(10, None) is None
    assert FileCheck("a.pdf", "pdf", None, "basic").cut_off(10, 20) is None  # then a failed transfer, retried


def test_svg_is_parsed_with_entities_off_and_must_have_an_svg_root():
    laughs = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;">]><svg>&b;</svg>'
    assert judge(laughs, "svg").endswith("declares an XML entity (refused: entity expansion is off)")
    other_root = b'<?xml version="1.0"?><image xmlns="x"><p/></image>'
    assert "its root element is <image>, not <svg>" in judge(other_root, "svg")
    assert "not well-formed XML (line 1, column" in judge(b"<svg><g></svg>", "svg")
    assert judge(b"<svg/>", "svg") == "ok"  # no namespace, no declaration: still an SVG root
    # The DTD an export tool names is not fetched (nothing here reaches the network) and not refused.
    assert b"svg11.dtd" in good_file("svg", b"x") and judge(good_file("svg", b"x"), "svg") == "ok"


def test_dst_needs_its_header_whole_records_and_the_end_of_design_record():
    good = dst_file(b"d", 100)
    assert judge(good + b"\x1a\x1a", "dst") == "ok"  # SUB padding after the end record, as some writers add
    assert judge(b"XX:" + good[3:], "dst").endswith("no Tajima header (its LA: field at the start): not a DST")
    assert judge(good[:-3], "dst").endswith("no end-of-design record: truncated?")
    assert judge(good[:-4] + good[-3:], "dst").endswith(
        "ends inside a stitch record (not whole 3-byte records): truncated?"
    )
    assert judge(good[:600], "dst").endswith("no end-of-design record: truncated?")
    assert judge(good[:300], "dst").endswith("shorter than its 512-byte header and an end-of-design record: truncated?")


def test_png_needs_ihdr_and_iend_and_a_pdf_header_may_follow_a_little_junk():
    png = good_file("png", b"p")
    assert judge(png[:12] + b"XXXX" + png[16:], "png").endswith("no IHDR chunk after the PNG signature: damaged")
    assert judge(png[:-1], "png").endswith("no IEND chunk at the end: truncated?")
    assert judge(b"\n\n" + good_file("pdf", b"q"), "pdf") == "ok"  # readers accept %PDF- within the first KiB
    assert judge(b"GIF89a" + b"\x00" * 2000, "jpg").endswith("no start-of-image marker (FF D8 FF): not a JPEG")


def test_a_json_attachment_without_error_keys_still_goes_out_as_another_type():
    assert judge(b'{"name": "Cap", "color": "red"}', "txt") == "ok"
    assert "a JSON error answer" in judge(b'{"message": "Access Denied"}', "txt")


def test_the_declared_type_decides_then_the_mime_type():
    assert declared_format("pdf", "image/png") == "pdf"
    assert declared_format("bin", "image/png") == "png"
    assert declared_format("PNG", None) == "png"
    assert declared_format("x", "application/vnd.acme+json") == "json"
    assert declared_format("pes", "application/octet-stream") is None


def test_memory_kept_is_bounded_for_a_1_gib_file():
    check = FileCheck("big.dst", "dst", None, "strict")
    for chunk in big_parts("dst", 1024 * MiB):
        check.feed(chunk)
    check.finish(arrived=1024 * MiB, announced=1024 * MiB)
    assert check.size == 1024 * MiB and len(check.head) == HEAD_BYTES and len(check.tail) == TAIL_BYTES
    big_json = FileCheck("big.json", "json", None, "strict")
    big_json.feed(b"[" + b"1," * (JSON_PARSE_BYTES // 2))
    big_json.feed(b"1]")
    assert big_json.json_body is None  # no longer held: only its ends are judged
    big_json.finish()
    cut = FileCheck("big.json", "json", None, "strict")
    cut.feed(b"[" + b"1," * (JSON_PARSE_BYTES // 2))
    with pytest.raises(PreflightFailed, match="does not end with the bracket it began with: truncated"):
        cut.finish()


def test_the_failure_email_says_what_to_fix_upstream():
    error = judge(BAD_FILES["truncated-dst"][1], "dst")
    assert (
        upstream_advice(error)[0]
        == "The file 1022_ID_o1_R_r1_Front.dst failed its pre-flight check: no end-of-design record: truncated?."
    )
    assert upstream_advice("asset host answered HTTP 503") is None
    at = datetime(2026, 12, 2, tzinfo=UTC)
    command = delivery_command(
        deliveryId="dlv_1",
        files=[{"kind": "production", "name": "1022_ID_o1_R_r1_Front.dst", "mimeType": "x/y", "url": "https://a/f"}],
        createdAt=at,
        errors=[AttemptError(attempt=1, at=at, error=error)],
    )
    integration = Integration(
        id="acme-local",
        tenant="acme",
        type="local",
        enabled=True,
        events=["order.created"],
        failureNotificationList="ops@acme.example",
        settings={"directory": "acme"},
    )
    body = failure_notification(command, integration, "the error cannot be fixed by retrying")["body"]
    assert "What to fix upstream:" in body and "re-export or re-upload it" in body
    assert "Nothing of this delivery was handed to the destination" in body
    plain = command.model_copy(update={"errors": [AttemptError(attempt=1, at=at, error="HTTP 503")]})
    assert "What to fix upstream" not in failure_notification(plain, integration, "3 attempts failed")["body"]


def test_the_large_test_dst_is_one_pyembroidery_reads_whole():
    """The 1 GiB tests stream this generator's DST: a real reader takes it, stitches to the end record."""
    data = b"".join(big_parts("dst", 64 * 1024 + 1))
    assert len(data) == 64 * 1024 + 1 and judge(data, "dst") == "ok"
    path = Path(tempfile.mkdtemp()) / "big.dst"
    path.write_bytes(data)
    pattern = pyembroidery.read_dst(str(path))
    assert pattern.count_stitches() >= (len(data) - 512 - 3) // 3 - 1

"""Pre-flight checks: does a file that is streaming in look like what the recipe says it is?

A production floor that gets a truncated DST or a PDF cut off at 80 % wastes material before anyone
notices, so every downloaded file is judged as its bytes arrive (no second read of a large file): a
`FileCheck` is fed each chunk and keeps only a bounded head and tail (and, for SVG, an incremental
XML parser), so a 1 GiB file costs the same memory as a small one. A failed check is permanent: the
asset itself is wrong, and trying the same download again gives the same bytes.

Which checks run is the integration's `preflight` mode: `strict` (every check, the default),
`basic` (empty files and error pages only), `off` (none). Pure: no I/O; `assets.py` feeds it.
"""

from __future__ import annotations

from typing import Literal

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from service.contracts import PreflightMode
from service.delivery_errors import PermanentDeliveryError

__all__ = ["FileCheck", "PreflightFailed", "PreflightMode", "declared_format", "upstream_advice"]
Format = Literal["pdf", "png", "jpeg", "svg", "json", "dst"]

# What a failed check's error text begins with: the failure e-mail recognises it by this.
PREFIX = "pre-flight: "
# Kept from the start of a file: enough for every signature and for an error page whole.
HEAD_BYTES = 64 * 1024
# Kept from the end: where PDF's %%EOF, PNG's IEND, JPEG's EOI and DST's end record are looked for
# (PDF readers look for %%EOF in the last KiB too; a few bytes of padding after the others are allowed).
TAIL_BYTES = 1024
# A JSON file is parsed whole up to this size; above it only its ends are checked (see `_judge_json`).
# Held in memory while it comes: a worker downloads up to 4 files for each of its 8 deliveries at once,
# so 1 MiB bounds this at 32 MiB however many recipe JSON files arrive together.
JSON_PARSE_BYTES = 1024 * 1024
DST_HEADER_BYTES = 512
DST_RECORD_BYTES = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR = b"\x00\x00\x00\x0dIHDR"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk: no data, so always the same CRC

_BY_TYPE: dict[str, Format] = {
    "pdf": "pdf",
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "svg": "svg",
    "json": "json",
    "dst": "dst",
}
_BY_MIME: dict[str, Format] = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/svg+xml": "svg",
    "application/json": "json",
}
LABELS: dict[Format, str] = {"pdf": "PDF", "png": "PNG", "jpeg": "JPEG", "svg": "SVG", "json": "JSON", "dst": "DST"}
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


class PreflightFailed(PermanentDeliveryError):
    """A file failed a pre-flight check: the whole delivery fails for good, nothing is handed over.

    One line: the file's name, then what was wrong with it."""

    def __init__(self, file: str, check: str, reason: str) -> None:
        super().__init__(f"{PREFIX}{file}: {reason}")
        self.file = file
        self.check = check  # a word for logs: empty, error-page, length, signature, end, xml, json
        self.reason = reason


def declared_format(file_type: str | None, mime_type: str | None) -> Format | None:
    """The format the recipe announces: by its `type` (the extension the machine goes by), else by its
    `mimeType`; None for any other type (those get the error-page checks only)."""
    by_type = _BY_TYPE.get((file_type or "").lower())
    if by_type is not None:
        return by_type
    mime = (mime_type or "").split(";")[0].strip().lower()
    if mime.endswith("+json"):
        return "json"
    return _BY_MIME.get(mime)


def type_of_name(name: str) -> str | None:
    """A delivered name's extension (commands written before `type` travelled on them)."""
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else None


def _is_html_type(file_type: str | None, mime_type: str | None) -> bool:
    return (file_type or "").lower() in ("html", "htm", "xhtml") or (mime_type or "").lower().startswith(
        ("text/html", "application/xhtml")
    )


def _skip_prolog(head: bytes) -> bytes:
    """The start of a document past a BOM, white space, an XML declaration and leading comments."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    for _ in range(8):  # a few leading declarations or comments, not an unbounded walk
        if text.startswith(b"<?xml"):
            end = text.find(b"?>")
        elif text.startswith(b"<!--"):
            end = text.find(b"-->")
        else:
            break
        if end < 0:
            break
        text = text[end + 3 if text.startswith(b"<!--") else end + 2 :].lstrip()
    return text


def looks_like_html(head: bytes) -> bool:
    """An HTML page (what a web server's error or login page is), judged by how it begins."""
    return _skip_prolog(head)[:16].lower().startswith(_HTML_STARTS)


class _FirstElement:
    """An XML parser target that keeps only the root element's name (no tree is built)."""

    def __init__(self) -> None:
        self.root: str | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag

    def data(self, text: str) -> None:
        """Text is not needed (without this the parser hands it to its default handler piece by piece)."""

    def close(self) -> str | None:
        return self.root


class FileCheck:
    """One file's pre-flight checks, fed its bytes as they stream in.

    The start of a file is judged once HEAD_BYTES of it are in (or at its end, if shorter), so an
    error page is always seen whole before its missing signature is blamed; `feed` raises
    `PreflightFailed` as soon as the bytes seen fail (a download that cannot pass stops early), and
    `finish` judges what needs the whole file (its end, its length)."""

    def __init__(self, name: str, file_type: str | None, mime_type: str | None, mode: PreflightMode) -> None:
        self.name = name
        self.mode = mode
        announced = declared_format(file_type, mime_type)
        self.format = announced if mode == "strict" else None
        self.json_expected = announced == "json"
        self.html_expected = _is_html_type(file_type, mime_type)
        label = LABELS[announced] if announced else f".{file_type} file" if file_type else "file"
        self.label = f"{'an' if label == 'SVG' or label.lstrip('.')[:1].lower() in 'aeiou' else 'a'} {label}"
        self.head = bytearray()
        self.tail = b""
        self.size = 0
        self.head_judged = False
        self.json_body: bytearray | None = bytearray() if self.format == "json" else None
        self.svg: DefusedXMLParser | None = None
        self.svg_root = _FirstElement()
        if self.format == "svg":
            # defusedxml's parser refuses entity declarations and external references: an SVG with an
            # external entity is an XXE attempt, or at best a file a machine cannot render alone.
            self.svg = DefusedXMLParser(target=self.svg_root, forbid_dtd=False, forbid_entities=True)

    def fail(self, check: str, reason: str) -> PreflightFailed:
        return PreflightFailed(self.name, check, reason)

    def feed(self, chunk: bytes) -> None:
        if self.mode == "off" or not chunk:
            return
        self.size += len(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.tail = chunk[-TAIL_BYTES:] if len(chunk) >= TAIL_BYTES else (self.tail + chunk)[-TAIL_BYTES:]
        if self.json_body is not None:
            if len(self.json_body) + len(chunk) <= JSON_PARSE_BYTES:
                self.json_body += chunk
            else:
                self.json_body = None  # too large to parse whole: only its ends are judged
        if self.head_judged:
            self._feed_svg(chunk)
        elif len(self.head) >= HEAD_BYTES:
            self._judge_head()
            # Everything before this chunk, and its first bytes, were in the head the parser was fed.
            self._feed_svg(chunk[HEAD_BYTES - (self.size - len(chunk)) :])

    def finish(self, *, arrived: int | None = None, announced: int | None = None) -> None:
        """After the last chunk. `announced` is the Content-Length the asset host sent (if any) and
        `arrived` the bytes that came for it (before any content decoding)."""
        if self.mode == "off":
            return
        if self.size == 0:
            raise self.fail("empty", "empty file (0 bytes)")
        if self.mode == "strict" and announced is not None and arrived is not None and arrived != announced:
            raise self.length_mismatch(arrived, announced)
        if not self.head_judged:
            if not self.json_expected and looks_like_json_error(bytes(self.head)):
                raise self.fail(
                    "error-page", f"a JSON error answer where {self.label} was announced: served with status 200?"
                )
            self._judge_head()
        if self.format is not None:
            self._judge_end()

    def cut_off(self, arrived: int, announced: int | None) -> PreflightFailed | None:
        """A download that ended early with a Content-Length announced: the length check's failure
        (strict), else None (then it is a failed transfer, tried again)."""
        if self.mode != "strict" or announced is None or arrived >= announced:
            return None
        return self.length_mismatch(arrived, announced)

    def length_mismatch(self, arrived: int, announced: int) -> PreflightFailed:
        return self.fail(
            "length",
            f"{arrived} of the {announced} bytes the asset host announced (Content-Length) arrived: cut off?",
        )

    # ------------------------------------------------------------------ the start of the file

    def _judge_head(self) -> None:
        self.head_judged = True
        head = bytes(self.head)
        if not self.html_expected and looks_like_html(head):
            raise self.fail(
                "error-page", f"an HTML page where {self.label} was announced: an error page served with status 200?"
            )
        if self.format == "pdf" and b"%PDF-" not in head[:1024]:
            raise self.fail("signature", "no %PDF- header: not a PDF")
        if self.format == "png":
            if not head.startswith(PNG_SIGNATURE):
                raise self.fail("signature", "wrong PNG signature: not a PNG")
            if head[8:16] != PNG_IHDR:
                raise self.fail("signature", "no IHDR chunk after the PNG signature: damaged")
        if self.format == "jpeg" and not head.startswith(b"\xff\xd8\xff"):
            raise self.fail("signature", "no start-of-image marker (FF D8 FF): not a JPEG")
        if self.format == "dst" and not head.startswith(b"LA:"):
            raise self.fail("signature", "no Tajima header (its LA: field at the start): not a DST")
        if self.format == "json" and head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] not in _JSON_STARTS:
            raise self.fail("json", "not JSON (it does not begin like a JSON value)")
        self._feed_svg(head)

    # ------------------------------------------------------------------ the end of the file

    def _judge_end(self) -> None:
        tail = self.tail
        if self.format == "pdf" and b"%%EOF" not in tail:
            raise self.fail("end", "no %%EOF in its last KiB: truncated?")
        if self.format == "png" and PNG_IEND not in tail:
            raise self.fail("end", "no IEND chunk at the end: truncated?")
        if self.format == "jpeg" and b"\xff\xd9" not in tail:
            raise self.fail("end", "no end-of-image marker (FF D9) at the end: truncated?")
        if self.format == "dst":
            self._judge_dst_end()
        if self.format == "svg":
            self._finish_svg()
        if self.format == "json":
            self._judge_json()

    def _judge_dst_end(self) -> None:
        # Tajima: a 512-byte header, then 3-byte stitch records, the last of them the end-of-design
        # record (third byte with the flag bits 0xF3 set: pyembroidery's reader stops there too); some
        # writers pad with SUB (0x1A) after it.
        records = self.tail.rstrip(b"\x1a")
        body = self.size - (len(self.tail) - len(records)) - DST_HEADER_BYTES
        if body < DST_RECORD_BYTES:
            raise self.fail("end", "shorter than its 512-byte header and an end-of-design record: truncated?")
        last = records[-DST_RECORD_BYTES:]
        if len(last) < DST_RECORD_BYTES or last[2] & 0xF3 != 0xF3:
            raise self.fail("end", "no end-of-design record: truncated?")
        if body % DST_RECORD_BYTES:
            raise self.fail("end", "ends inside a stitch record (not whole 3-byte records): truncated?")

    def _judge_json(self) -> None:
        if self.json_body is not None:
            try:
                orjson.loads(bytes(self.json_body))
            except orjson.JSONDecodeError as exc:
                raise self.fail("json", f"not valid JSON ({exc.msg}): truncated?") from None
            return
        # Larger than parsed whole: a document that is cut off ends without its closing bracket.
        opening = bytes(self.head).removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
        closing = self.tail.rstrip()[-1:]
        if {b"{": b"}", b"[": b"]"}.get(opening) != closing:
            raise self.fail("json", "does not end with the bracket it began with: truncated?")

    # ------------------------------------------------------------------ SVG, parsed as it comes

    def _feed_svg(self, data: bytes) -> None:
        if self.svg is None or not data:
            return
        try:
            self.svg.feed(data)
        except DefusedXmlException as exc:
            raise self._entity_refused(exc) from None
        except ParseError as exc:
            raise self._not_well_formed(exc) from None
        self._judge_svg_root()

    def _finish_svg(self) -> None:
        assert self.svg is not None
        try:
            self.svg.close()
        except DefusedXmlException as exc:
            raise self._entity_refused(exc) from None
        except ParseError as exc:
            raise self._not_well_formed(exc) from None
        self._judge_svg_root(finished=True)

    def _judge_svg_root(self, finished: bool = False) -> None:
        root = self.svg_root.root
        if root is None:
            if finished:
                raise self.fail("xml", "no root element: not an SVG")
            return
        local = root.rpartition("}")[2]
        if local != "svg":
            raise self.fail("xml", f"its root element is <{local[:40]}>, not <svg>: not an SVG")

    def _entity_refused(self, exc: DefusedXmlException) -> PreflightFailed:
        external = "External" in type(exc).__name__ or getattr(exc, "sysid", None) or getattr(exc, "pubid", None)
        what = "an external XML entity" if external else "an XML entity"
        return self.fail("xml", f"declares {what} (refused: entity expansion is off)")

    def _not_well_formed(self, exc: ParseError) -> PreflightFailed:
        if bytes(self.head).lstrip()[:1] in (b"{", b"["):
            return self.fail(
                "error-page", f"a JSON answer where {self.label} was announced: an error served with status 200?"
            )
        line, column = getattr(exc, "position", (0, 0))
        return self.fail("xml", f"not well-formed XML (line {line}, column {column}): truncated?")


_JSON_STARTS = frozenset(bytes([c]) for c in b'{["-0123456789tfn')
# Keys an API's error answer carries; a small JSON object with one of them, served where another type
# was announced, is taken for an error (a tenant's JSON attachment without them still goes out).
_ERROR_KEYS = frozenset({"error", "errors", "message", "status", "statusCode", "code", "detail", "title"})


def looks_like_json_error(data: bytes) -> bool:
    """A whole small body that is a JSON object naming an error, status or message."""
    if data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] != b"{":
        return False
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and not _ERROR_KEYS.isdisjoint(doc)


def upstream_advice(error: str) -> list[str] | None:
    """For the failure e-mail: what to fix where the files come from, when a pre-flight check failed."""
    if not error.startswith(PREFIX):
        return None
    file, _, reason = error.removeprefix(PREFIX).partition(": ")
    return [
        f"The file {file} failed its pre-flight check: {reason}.",
        "Nothing of this delivery was handed to the destination. The file is wrong where it comes from:",
        "re-export or re-upload it from the system that made the recipe (the asset host served it",
        "this way), then trigger the integration again.",
    ]

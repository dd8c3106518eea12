"""Files of every type the pre-flight checks know, good ones written by real encoders (Pillow for PNG,
JPEG and PDF, pyembroidery for Tajima DST), and the bad ones an asset host serves in real life."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import orjson
import pyembroidery
from PIL import Image

MiB = 1024**2


def _image(seed: bytes) -> Image.Image:
    """A small image whose pixels come from `seed`: two calls with different seeds differ byte for byte."""
    pixels = hashlib.shake_256(seed).digest(16 * 16 * 3)
    return Image.frombytes("RGB", (16, 16), pixels)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def dst_file(seed: bytes, stitches: int = 40) -> bytes:
    pattern = pyembroidery.EmbPattern()
    pattern.metadata("name", seed.hex()[:16])
    steps = hashlib.shake_256(seed).digest(stitches * 2)
    x = y = 0
    for i in range(stitches):
        x += steps[2 * i] % 60 - 30
        y += steps[2 * i + 1] % 60 - 30
        pattern.add_stitch_absolute(pyembroidery.STITCH, x, y)
    pattern.end()
    out = io.BytesIO()
    pyembroidery.write_dst(pattern, out)
    return out.getvalue()


def svg_file(seed: bytes) -> bytes:
    # The DOCTYPE an Illustrator export carries: an external DTD that a checker must not fetch, nor refuse.
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" data-seed="'
        + seed.hex().encode()
        + b'"><rect width="10" height="10" fill="red"/></svg>\n'
    )


def good_file(file_type: str, seed: bytes) -> bytes:
    """A valid file of the type (by extension); unknown types get the seed and some bytes."""
    kind = file_type.lower()
    if kind == "png":
        return _encoded(_image(seed), "PNG")
    if kind in ("jpg", "jpeg"):
        return _encoded(_image(seed), "JPEG")
    if kind == "pdf":
        return _encoded(_image(seed), "PDF")
    if kind == "dst":
        return dst_file(seed)
    if kind == "svg":
        return svg_file(seed)
    if kind == "json":
        return orjson.dumps({"recipe": seed.hex(), "components": [{"name": "Cap", "color": "red"}]})
    return b"file " + seed + hashlib.sha256(seed).digest() * 64


# One bad file of each kind the issue names (and a few more), each with its declared type and a piece
# of the reason it must fail with.
BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    "empty": ("pdf", b"", "empty file (0 bytes)"),
    "html-error-page": (
        "dst",
        b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>\n",
        "an HTML page where a DST was announced",
    ),
    "truncated-pdf": ("pdf", good_file("pdf", b"truncated")[:-200], "no %%EOF in its last KiB: truncated?"),
    "truncated-dst": ("dst", dst_file(b"truncated", 400)[:-90], "no end-of-design record: truncated?"),
    "wrong-png-signature": ("png", b"\x89PNX" + good_file("png", b"sig")[4:], "wrong PNG signature"),
    "svg-external-entity": (
        "svg",
        b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>\n',
        "declares an external XML entity (refused: entity expansion is off)",
    ),
    "truncated-jpeg": ("jpg", good_file("jpg", b"cut")[:-2], "no end-of-image marker (FF D9) at the end"),
    "broken-json": ("json", b'{"recipe": "r-1", "components": [', "not valid JSON"),
    "json-error-answer": (
        "png",
        b'{"error": "NoSuchKey", "status": 404}',
        "a JSON error answer where a PNG was announced",
    ),
}


# ------------------------------------------------------------------ large files, streamed by the test host

DST_HEADER = (b"LA:big-design     \rST:      0\rCO:  0\r" + b"\x1a").ljust(512, b" ")
DST_STITCHES = b"\x01\x00\x03" * (MiB // 3)  # 3-byte stitch records, about a MiB of them
DST_END = b"\x00\x00\xf3"


def big_parts(kind: str, size: int) -> Iterator[bytes]:
    """The chunks of a `size`-byte file the test host streams for /big/<size>?as=<kind>: a valid DST
    (header, stitch records, the end-of-design record, SUB padding to the exact size)."""
    if kind != "dst":
        raise ValueError(f"no large {kind} files here")
    body = size - len(DST_HEADER) - len(DST_END)
    padding = body % 3
    records = body - padding
    yield DST_HEADER
    while records > 0:
        chunk = DST_STITCHES[: min(len(DST_STITCHES), records)]
        yield chunk
        records -= len(chunk)
    yield DST_END + b"\x1a" * padding


def big_digest(kind: str, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in big_parts(kind, size):
        digest.update(chunk)
    return digest.hexdigest()


def big_prefix(kind: str, size: int, length: int) -> bytes:
    out = bytearray()
    for chunk in big_parts(kind, size):
        out += chunk
        if len(out) >= length:
            break
    return bytes(out[:length])

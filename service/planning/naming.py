"""The one place that knows how delivered files are named.

Raw feed:  <recipeId>-<name>.<type>                              999-63CHGJokGoxPfSba-Ticket.pdf
Order:     <orderNumber>_ID_<orderId>_R_<recipeId>_<name>.<type> 1022_ID_6182665224482_R_999-…_Ticket.pdf

Names are safe on every destination (no path separators, no `..`, no control characters, at most
MAX_NAME_BYTES of UTF-8) and deterministic, so a repeated delivery overwrites instead of piling up.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_NAME_BYTES = 200
# C0 and C1 controls and the Unicode line and paragraph separators: anything a header or a listing
# could take for a line break (an order number with U+2028 once broke e-mail delivery).
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029/\\:*?"<>|]')


def safe_part(text: str) -> str:
    """One name component with every character some destination would refuse replaced by `_`."""
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip()
    while ".." in cleaned:
        cleaned = cleaned.replace("..", "_")
    return cleaned.strip(". ") or "_"


def is_safe_name(name: str) -> bool:
    """Whether `name` is one plain file name as this module makes them: no separator, no `..`, no
    control character, not hidden, bounded. Checked again wherever a file is written."""
    return (
        0 < len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
        and not _UNSAFE.search(name)
        and ".." not in name
        and name == name.strip(". ")
    )


def _bounded(stem: str, ext: str) -> str:
    name = f"{stem}.{ext}" if ext else stem
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    # Keep the start readable and the whole name unique with a digest of what was cut.
    digest = hashlib.sha256(stem.encode()).hexdigest()[:12]
    budget = MAX_NAME_BYTES - len(ext.encode()) - len(digest) - 3
    head = stem.encode()[:budget].decode("utf-8", "ignore")
    return f"{head}~{digest}.{ext}" if ext else f"{head}~{digest}"


def file_prefix(recipe_id: str, order_id: str | None = None, order_number: str | None = None) -> str:
    """What every file name of one delivery starts with; the separator to the file's own name included."""
    if order_id is None:
        return f"{safe_part(recipe_id)}-"
    return f"{safe_part(order_number or '')}_ID_{safe_part(order_id)}_R_{safe_part(recipe_id)}_"


def delivered_name(prefix: str, name: str, file_type: str) -> str:
    return _bounded(prefix + safe_part(name), safe_part(file_type))


def manifest_name(prefix: str) -> str:
    return delivered_name(prefix, "manifest", "json")


def delivery_names(prefix: str, files: list[tuple[str, str]]) -> list[str]:
    """Final names of a delivery's (name, type) files: distinct from each other and from the manifest's,
    even where destinations ignore case, so none overwrites another. A repeated name is numbered
    (`Ticket`, `Ticket-2`, ...), skipping numbers another file already uses."""
    taken = {manifest_name(prefix).casefold()}
    names = []
    for name, file_type in files:
        candidate, number = delivered_name(prefix, name, file_type), 1
        while candidate.casefold() in taken:
            number += 1
            candidate = delivered_name(prefix, f"{name}-{number}", file_type)
        taken.add(candidate.casefold())
        names.append(candidate)
    return names

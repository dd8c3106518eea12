"""Turns the bytes of one Kafka message into a typed event, or into the reasons it was refused.

Pure: no Kafka, no I/O besides reading the schemas once. Never raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import jsonschema_rs
import orjson
from email_validator import EmailNotValidError, validate_email
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel
from pydantic import ValidationError as ModelError
from referencing import Registry, Resource

from service.contracts import Integration, OrderEvent, RecipeEvent, Trigger
from service.secrets import is_encrypted, is_protected_setting

M = TypeVar("M", bound=BaseModel)
MAX_REASONS = 20
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Kind(Generic[M]):
    """One input contract: its schema file, its model, and the field the message key must equal
    (the first of `key_fields` that the document has)."""

    name: str
    schema_file: str
    model: type[M]
    key_fields: tuple[str, ...]

    def key_field(self, doc: dict[str, Any]) -> str:
        return next((f for f in self.key_fields if f in doc), self.key_fields[0])


RECIPE = Kind("recipe", "recipe-event.schema.json", RecipeEvent, ("recipeId",))
ORDER = Kind("order", "order-event.schema.json", OrderEvent, ("orderId",))
INTEGRATION = Kind("integration", "integration.schema.json", Integration, ("id",))
# Keyed by their target, so that an order trigger lands in its order's partition.
TRIGGER = Kind("trigger", "trigger.schema.json", Trigger, ("orderId", "recipeId", "orderNumber"))


@dataclass(frozen=True)
class Rejected:
    reasons: list[str]
    #: the refused bytes hold a plain-text secret: they must not be copied anywhere
    hide_value: bool = False


class _PythonPattern:
    """`pattern` as the refusing path judges it (Python's `re.search`). The compiled validator's own
    regex engine differs at the edges (`$` before a final newline, what `\\s` matches), and an event
    it passed would never reach the path that says what is wrong: both must draw the line in the
    same place."""

    def __init__(self, parent_schema: dict[str, Any], value: str, schema_path: list[str | int]) -> None:
        self.search = re.compile(value).search

    def validate(self, instance: Any) -> None:
        if isinstance(instance, str) and self.search(instance) is None:
            raise ValueError("does not match the pattern")


@dataclass(frozen=True)
class _Schema:
    #: answers valid or not, fast; its error texts are never shown
    compiled: jsonschema_rs.Validator
    #: says why, in the words upstream teams have been shown all along
    explaining: Draft202012Validator


@lru_cache(maxsize=4)
def _validators(schemas_dir: Path) -> dict[str, _Schema]:
    docs = {p.name: orjson.loads(p.read_bytes()) for p in sorted(schemas_dir.glob("*.schema.json"))}
    registry: Registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in docs.values())
    compiled_registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in docs.values()])
    return {
        name: _Schema(
            # Formats stay annotations, as for the explaining validator (it has no format checker).
            jsonschema_rs.Draft202012Validator(
                doc,
                registry=compiled_registry,
                keywords={"pattern": _PythonPattern},
                validate_formats=False,
                offline=True,
            ),
            Draft202012Validator(doc, registry=registry),
        )
        for name, doc in docs.items()
    }


def _compiled_says_valid(schema: _Schema, doc: Any) -> bool:
    try:
        return schema.compiled.is_valid(doc)
    except Exception:
        # A value it cannot take in (an integer past 64 bits, say): the explaining path decides.
        return False


def _path(error: SchemaError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def _reason(error: SchemaError) -> str:
    path = _path(error)
    # A refused secret must not be echoed back into invalid-events or a CLI message.
    parts = [str(p) for p in error.absolute_path]
    if any(is_protected_setting(p) for p in parts):
        return f"{path}: invalid value (not shown: secret setting)"
    if error.validator in ("oneOf", "anyOf") and f"x-{error.validator}-reason" in error.schema:
        return f"{path}: {error.schema[f'x-{error.validator}-reason']}"
    return f"{path}: {error.message}"[:MAX_REASON_CHARS]


def schema_reasons(schemas_dir: Path, schema_file: str, doc: Any) -> list[str]:
    schema = _validators(schemas_dir)[schema_file]
    if _compiled_says_valid(schema, doc):
        return []
    # Only a refusal pays for the explaining validator; when it finds nothing, the event is valid.
    errors = sorted(schema.explaining.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [_reason(e) for e in errors[:MAX_REASONS]]


def address_list_reasons(field: str, value: str) -> list[str]:
    reasons = []
    for address in (a.strip() for a in value.split(",")):
        if not address:
            continue
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError:
            reasons.append(f"{field}: {address[:100]!r} is not an e-mail address")
    return reasons


def split_addresses(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


def integration_reasons(config: Integration, *, stored: bool, allow_http_hooks: bool) -> list[str]:
    """Rules the schema cannot say: address syntax, https hooks, encrypted secrets on the topic."""
    reasons = address_list_reasons("successNotificationList", config.successNotificationList)
    reasons += address_list_reasons("failureNotificationList", config.failureNotificationList)
    if config.type == "email":
        reasons += address_list_reasons("settings.to", config.settings.get("to", ""))
        if not split_addresses(config.settings.get("to", "")):
            reasons.append("settings.to: at least one recipient address is needed")
    if config.type == "zapier":
        url = str(config.settings.get("hook-url", ""))
        if url.startswith("http://") and not allow_http_hooks:
            reasons.append(
                "settings.hook-url: must be https (plain http is only allowed by the service's local-testing setting)"
            )
    if stored:
        for name, value in config.settings.items():
            if is_protected_setting(name) and not is_encrypted(value):
                reasons.append(f"settings.{name}: secret published in plain text (use `outbound integrations put`)")
    return reasons


def parse_json(value: bytes | None, max_bytes: int) -> Any | Rejected:
    if value is None:
        return Rejected(["message has no value"])
    if len(value) > max_bytes:
        return Rejected([f"message is {len(value)} bytes, more than the limit of {max_bytes}"])
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected([f"message is not UTF-8: {exc.reason} at byte {exc.start}"])
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Rejected([f"message is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"])


def parse_event(
    kind: Kind[M], key: bytes | None, value: bytes | None, *, schemas_dir: Path, max_bytes: int
) -> M | Rejected:
    doc = parse_json(value, max_bytes)
    if isinstance(doc, Rejected):
        return doc
    if not isinstance(doc, dict):
        return Rejected([f"message is JSON {type(doc).__name__}, expected an object"])
    reasons = schema_reasons(schemas_dir, kind.schema_file, doc)
    if reasons:
        return Rejected(reasons)
    try:
        event = kind.model.model_validate(doc)
    except ModelError as exc:
        return Rejected([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:MAX_REASONS])
    field = kind.key_field(doc)
    expected = str(doc[field])
    if key is None:
        return Rejected([f"message has no key; the key must be the {field} ({expected!r}) as UTF-8 bytes"])
    if key != expected.encode():
        shown = key[:80].decode("utf-8", "replace")
        return Rejected([f"message key {shown!r} differs from {field} {expected!r} in the body"])
    return event


def parse_stored_integration(
    key: bytes | None, value: bytes | None, *, schemas_dir: Path, max_bytes: int, allow_http_hooks: bool
) -> Integration | Rejected:
    """A configuration as read from the integrations topic (its secrets must be encrypted there)."""
    config = parse_event(INTEGRATION, key, value, schemas_dir=schemas_dir, max_bytes=max_bytes)
    if isinstance(config, Rejected):
        return Rejected(config.reasons, hide_value=_has_plain_secret(value, max_bytes))
    assert isinstance(config, Integration)
    reasons = integration_reasons(config, stored=True, allow_http_hooks=allow_http_hooks)
    return Rejected(reasons, hide_value=_has_plain_secret(value, max_bytes)) if reasons else config


def _has_plain_secret(value: bytes | None, max_bytes: int) -> bool:
    """Whether refused integration bytes show a secret setting unencrypted (even if the rest is invalid)."""
    doc = parse_json(value, max_bytes)
    settings = doc.get("settings") if isinstance(doc, dict) else None
    if not isinstance(settings, dict):
        return False
    return any(is_protected_setting(str(name)) and not is_encrypted(v) for name, v in settings.items())

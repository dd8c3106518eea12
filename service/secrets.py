"""Secret integration settings: encrypted before they are published, decrypted only to deliver.

A setting is secret when its name ends in `-secure` or `-secret`. On the topic its value is
`fernet:<token>`; the keys come from OUTBOUND_SECRET_KEYS (comma-separated, newest first), so a
key can be rotated by adding the new one in front and re-putting the integrations.

A catch hook's `hook-url` is a capability (whoever has it can post): it is sealed and kept out of
every answer and error text like a secret, and shown only as its scheme and host.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENCRYPTED_PREFIX = "fernet:"
REDACTED = "********"


class SecretKeyError(Exception):
    """No usable key, or a token that none of the keys opens."""


CAPABILITY_SETTINGS = frozenset({"hook-url"})


def is_secret_setting(name: str) -> bool:
    return name.endswith(("-secure", "-secret"))


def is_protected_setting(name: str) -> bool:
    """Secret settings and capability URLs: sealed on the topic, never shown or logged whole."""
    return is_secret_setting(name) or name in CAPABILITY_SETTINGS


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


OPENED_KEPT = 1024  # opened secrets kept in memory (by their sealed text)


class SecretBox:
    def __init__(self, keys: str) -> None:
        parsed = [k.strip() for k in keys.split(",") if k.strip()]
        if not parsed:
            raise SecretKeyError("OUTBOUND_SECRET_KEYS is not set: secrets cannot be encrypted or read")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parsed])
        except ValueError as exc:
            raise SecretKeyError("OUTBOUND_SECRET_KEYS holds a key that is not a Fernet key") from exc
        self._opened: dict[str, str] = {}

    def encrypt_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            name: (
                ENCRYPTED_PREFIX + self._fernet.encrypt(str(value).encode()).decode()
                if is_protected_setting(name) and not is_encrypted(value)
                else value
            )
            for name, value in settings.items()
        }

    def decrypt_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {name: self._decrypt(value) if is_encrypted(value) else value for name, value in settings.items()}

    def try_decrypt(self, value: str) -> str | None:
        try:
            return self._decrypt(value)
        except SecretKeyError:
            return None

    def _decrypt(self, value: str) -> str:
        # Every delivery opens its integration's secrets: kept opened (by their sealed text, which
        # only these keys open), a delivery no longer pays a decryption per secret.
        if (opened := self._opened.get(value)) is not None:
            return opened
        try:
            opened = self._fernet.decrypt(value.removeprefix(ENCRYPTED_PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError("a secret setting cannot be decrypted with the configured keys") from exc
        if len(self._opened) >= OPENED_KEPT:
            self._opened.clear()
        self._opened[value] = opened
        return opened


# URL signatures and keys inside connection strings, as a library's error text may quote them.
_SIGNED = re.compile(
    r"(?i)\b(sig|signature|accountkey|sharedaccesssignature|x-amz-signature|x-amz-credential)=[^&;\s\"']+"
)


def scrub(text: str, settings: dict[str, Any], limit: int = 1000) -> str:
    """Error text fit for a result, a log line or a notification: no secret setting, no signature."""
    for name, value in settings.items():
        if is_protected_setting(name) and isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, redact_setting(name, value))
            if name in CAPABILITY_SETTINGS:
                # A library may quote the URL normalised or in part: its path and query are the capability.
                path = _path_and_query(value)
                if len(path) >= 4:
                    text = text.replace(path, f"/{REDACTED}")
    return _SIGNED.sub(lambda m: f"{m.group(1)}={REDACTED}", text)[:limit]


def redact_settings(settings: dict[str, Any], box: SecretBox | None = None) -> dict[str, Any]:
    """Settings fit to show: secrets as `********`, capability URLs as their scheme and host (read
    through `box` when sealed and a key opens them, else `********` too)."""
    return {name: redact_setting(name, value, box) for name, value in settings.items()}


def redact_setting(name: str, value: Any, box: SecretBox | None = None) -> Any:
    if name in CAPABILITY_SETTINGS:
        plain = value
        if is_encrypted(value):
            plain = box.try_decrypt(value) if box is not None else None
        return redact_url(plain) if isinstance(plain, str) else REDACTED
    return REDACTED if is_secret_setting(name) else value


def redact_url(url: str) -> str:
    """`https://hooks.example/********`: the scheme and host, never the path, query or user part."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}/{REDACTED}"


def _path_and_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.path + (f"?{parts.query}" if parts.query else "")

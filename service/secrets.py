"""Secret integration settings: encrypted before they are published, decrypted only to deliver.

A setting is secret when its name ends in `-secure` or `-secret`. On the topic its value is
`fernet:<token>`; the keys come from OUTBOUND_SECRET_KEYS (comma-separated, newest first), so a
key can be rotated by adding the new one in front and re-putting the integrations.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENCRYPTED_PREFIX = "fernet:"
REDACTED = "********"


class SecretKeyError(Exception):
    """No usable key, or a token that none of the keys opens."""


def is_secret_setting(name: str) -> bool:
    return name.endswith(("-secure", "-secret"))


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


class SecretBox:
    def __init__(self, keys: str) -> None:
        parsed = [k.strip() for k in keys.split(",") if k.strip()]
        if not parsed:
            raise SecretKeyError("OUTBOUND_SECRET_KEYS is not set: secrets cannot be encrypted or read")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parsed])
        except ValueError as exc:
            raise SecretKeyError("OUTBOUND_SECRET_KEYS holds a key that is not a Fernet key") from exc

    def encrypt_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            name: (
                ENCRYPTED_PREFIX + self._fernet.encrypt(str(value).encode()).decode()
                if is_secret_setting(name) and not is_encrypted(value)
                else value
            )
            for name, value in settings.items()
        }

    def decrypt_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {name: self._decrypt(value) if is_encrypted(value) else value for name, value in settings.items()}

    def _decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.removeprefix(ENCRYPTED_PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError("a secret setting cannot be decrypted with the configured keys") from exc


# URL signatures and keys inside connection strings, as a library's error text may quote them.
_SIGNED = re.compile(
    r"(?i)\b(sig|signature|accountkey|sharedaccesssignature|x-amz-signature|x-amz-credential)=[^&;\s\"']+"
)


def scrub(text: str, settings: dict[str, Any], limit: int = 1000) -> str:
    """Error text fit for a result, a log line or a notification: no secret setting, no signature."""
    for name, value in settings.items():
        if is_secret_setting(name) and isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return _SIGNED.sub(lambda m: f"{m.group(1)}={REDACTED}", text)[:limit]


def redact_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {name: REDACTED if is_secret_setting(name) else value for name, value in settings.items()}

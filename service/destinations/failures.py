"""What any exception from a delivery attempt means: a short message, and whether to try again.

Every attempt ends here when it fails, whatever raised: the adapter, the client library, the asset
download, the address check, the disk or the secret box. Nothing escapes to the agent as "bad
input": a delivery command that was valid stays a delivery, with a result, a retry or a failure
notice.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import aiosmtplib
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from service.delivery_errors import DeliveryError, ReceiverGoneError
from service.planning.retry_policy import is_permanent_http_status
from service.secrets import SecretKeyError

MAX_ERROR_CHARS = 300
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
S3_PERMANENT_CODES = {
    "AccessDenied",
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
}


def _loaded(module: str) -> Any:
    """A client library's module once something imported it, else None. The adapters import their
    libraries when first used (a worker starts without SFTP's and Azure's, a second of every start),
    and an exception of a library never imported cannot have been raised."""
    return sys.modules.get(module)


@dataclass(frozen=True)
class Failure:
    message: str
    permanent: bool
    retry_after: float | None = None
    # The receiver said it is gone for good: its integration is turned off (planning/health.py).
    gone: bool = False


def classify_failure(exc: BaseException) -> Failure:
    """The failure an exception stands for. Unknown errors are transient: the retry limit bounds them.
    Remote text (response bodies, server messages) never becomes the message: codes and types do."""
    ours = _our_error_inside(exc)
    if ours is not None:
        failure = _failure(str(ours), permanent=ours.permanent, retry_after=ours.retry_after)
        return replace(failure, gone=isinstance(ours, ReceiverGoneError))
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return _failure("the destination did not answer in time", permanent=False)
    if isinstance(exc, aiohttp.InvalidURL):
        return _failure(f"invalid URL: {exc}", permanent=True)
    if isinstance(exc, aiohttp.ClientError):
        return _failure(f"HTTP: {type(exc).__name__}", permanent=False)
    if (ssh := _loaded("asyncssh")) is not None:
        if isinstance(exc, ssh.HostKeyNotVerifiable):
            return _failure("SFTP: the server's host key does not match settings.host-key", permanent=True)
        if isinstance(exc, ssh.PermissionDenied):
            return _failure("SFTP: login refused (username, password or key)", permanent=True)
        if isinstance(exc, ssh.KeyImportError):
            return _failure("SFTP: a key in the settings cannot be read", permanent=True)
        if isinstance(exc, ssh.SFTPError | ssh.Error):
            return _failure(f"SFTP: {type(exc).__name__} (code {exc.code})", permanent=False)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return _failure("SMTP: the server refused every recipient", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        return _failure(f"SMTP: {type(exc).__name__}: {exc}", permanent=False)
    if isinstance(exc, ClientError):
        code = _code(exc.response.get("Error", {}).get("Code"))
        return _failure(f"S3: {code or 'error'}", permanent=code in S3_PERMANENT_CODES)
    if isinstance(exc, ParamValidationError):
        return _failure(f"S3: invalid request: {exc}", permanent=True)
    if isinstance(exc, BotoCoreError):
        return _failure(f"S3: {type(exc).__name__}", permanent=False)
    if (azure := _loaded("azure.core.exceptions")) is not None:
        if isinstance(exc, azure.ClientAuthenticationError | azure.ResourceNotFoundError):
            code = _code(getattr(exc, "error_code", None))
            return _failure(f"Azure: {type(exc).__name__}{f' ({code})' if code else ''}", permanent=True)
        if isinstance(exc, azure.HttpResponseError):
            status = exc.status_code or 0
            return _failure(f"Azure: HTTP {status}", permanent=is_permanent_http_status(status))
        if isinstance(exc, azure.AzureError):
            return _failure(f"Azure: {type(exc).__name__}", permanent=False)
    if isinstance(exc, SecretKeyError):
        # Keys reach workers unevenly during a rotation: a worker without the new key yet may succeed later.
        return _failure(str(exc), permanent=False)
    if isinstance(exc, KafkaError):
        return _failure(f"Kafka: {type(exc).__name__}", permanent=False)
    if isinstance(exc, OSError):
        # A full disk, a refused connection, a reset: conditions that pass.
        return _failure(f"{type(exc).__name__}: {exc.strerror or exc}", permanent=False)
    if isinstance(exc, ValueError | KeyError | TypeError):
        # Settings that do not parse (a port out of range, a host name IDNA refuses): the same every time.
        return _failure(f"invalid configuration: {type(exc).__name__}: {exc}", permanent=True)
    return _failure(f"unexpected {type(exc).__name__}", permanent=False)


def _our_error_inside(exc: BaseException) -> DeliveryError | None:
    """A DeliveryError the libraries wrapped (aiobotocore turns anything its connector raises into
    HTTPClientError; others chain it): the policy's refusal stays a refusal, with its reason."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DeliveryError):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "kwargs", {}).get("error") if isinstance(current, BotoCoreError) else None
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__ or current.__context__
    return None


def _code(value: object) -> str:
    """A remote error code, kept only when it looks like one (a word, not a sentence)."""
    text = str(value or "")
    return text if _CODE.fullmatch(text) else ""


def _failure(message: str, *, permanent: bool, retry_after: float | None = None) -> Failure:
    return Failure(_first_line(message)[:MAX_ERROR_CHARS], permanent, retry_after)


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()  # every kind of line break, U+2028 and U+0085 included
    return lines[0] if lines else ""

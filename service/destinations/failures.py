"""What any exception from a delivery attempt means: a short message, and whether to try again.

Every attempt ends here when it fails, whatever raised: the adapter, the client library, the asset
download, the address check, the disk or the secret box. Nothing escapes to the agent as "bad
input": a delivery command that was valid stays a delivery, with a result, a retry or a failure
notice.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosmtplib
import asyncssh
import httpx
from aiokafka.errors import KafkaError
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from service.delivery_errors import DeliveryError
from service.planning.retry_policy import is_permanent_http_status
from service.secrets import SecretKeyError

MAX_ERROR_CHARS = 300
S3_PERMANENT_CODES = {
    "AccessDenied",
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
}


@dataclass(frozen=True)
class Failure:
    message: str
    permanent: bool
    retry_after: float | None = None


def classify_failure(exc: BaseException) -> Failure:
    """The failure an exception stands for. Unknown errors are transient: the retry limit bounds them."""
    if isinstance(exc, DeliveryError):
        return _failure(str(exc), permanent=exc.permanent, retry_after=exc.retry_after)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return _failure("the destination did not answer in time", permanent=False)
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return _failure(f"invalid URL: {exc}", permanent=True)
    if isinstance(exc, httpx.HTTPError):
        return _failure(f"HTTP: {type(exc).__name__}", permanent=False)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return _failure("SFTP: the server's host key does not match settings.host-key", permanent=True)
    if isinstance(exc, asyncssh.PermissionDenied):
        return _failure("SFTP: login refused (username, password or key)", permanent=True)
    if isinstance(exc, asyncssh.KeyImportError):
        return _failure("SFTP: a key in the settings cannot be read", permanent=True)
    if isinstance(exc, asyncssh.SFTPError):
        return _failure(f"SFTP: {exc.reason or type(exc).__name__}", permanent=False)
    if isinstance(exc, asyncssh.Error):
        return _failure(f"SFTP: {type(exc).__name__}: {exc.reason}", permanent=False)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return _failure("SMTP: the server refused every recipient", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        return _failure(f"SMTP: {type(exc).__name__}: {exc}", permanent=False)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return _failure(f"S3: {code or 'error'}", permanent=code in S3_PERMANENT_CODES)
    if isinstance(exc, ParamValidationError):
        return _failure(f"S3: invalid request: {exc}", permanent=True)
    if isinstance(exc, BotoCoreError):
        return _failure(f"S3: {type(exc).__name__}", permanent=False)
    if isinstance(exc, ClientAuthenticationError | ResourceNotFoundError):
        return _failure(f"Azure: {type(exc).__name__}: {_first_line(exc.message)}", permanent=True)
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        return _failure(f"Azure: HTTP {status}", permanent=is_permanent_http_status(status))
    if isinstance(exc, AzureError):
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


def _failure(message: str, *, permanent: bool, retry_after: float | None = None) -> Failure:
    return Failure(_first_line(message)[:MAX_ERROR_CHARS], permanent, retry_after)


def _first_line(text: object) -> str:
    return str(text).strip().split("\n", 1)[0]

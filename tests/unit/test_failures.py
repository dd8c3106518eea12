"""What a failed attempt's exception means: retry, or give up and tell people."""

from __future__ import annotations

import errno
import socket

import aiohttp
import aiosmtplib
import asyncssh
import pytest
from aiokafka.errors import KafkaTimeoutError
from botocore.exceptions import ClientError, EndpointConnectionError

from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.failures import MAX_ERROR_CHARS, classify_failure
from service.netpolicy import RefusedDestination, UnresolvedHost, url_host_port
from service.secrets import SecretKeyError


def raised(call) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def s3_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutObject")


@pytest.mark.parametrize(
    "exc",
    [
        raised(lambda: url_host_port("https://cdn:99999/x")),
        raised(lambda: "a..b".encode("idna")),
        RefusedDestination("host 'x' resolves to non-public address 10.0.0.1"),
        PermanentDeliveryError("Zapier: hook answered HTTP 404"),
        asyncssh.HostKeyNotVerifiable("host key mismatch"),
        asyncssh.PermissionDenied("denied"),
        aiosmtplib.SMTPRecipientsRefused([]),
        s3_error("AccessDenied"),
        aiohttp.InvalidURL("bad"),
        KeyError("hook-url"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_that_repeat_on_every_attempt_are_permanent(exc):
    assert classify_failure(exc).permanent


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        TimeoutError(),
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerTimeoutError("slow"),
        TransientDeliveryError("Zapier: hook answered HTTP 503"),
        UnresolvedHost("host 'x' does not resolve"),
        asyncssh.ConnectionLost("lost"),
        aiosmtplib.SMTPServerDisconnected("gone"),
        s3_error("SlowDown"),
        EndpointConnectionError(endpoint_url="https://s3.example"),
        KafkaTimeoutError(),
        SecretKeyError("no key opens this secret"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        RuntimeError("something nobody foresaw"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_that_may_pass_are_retried(exc):
    assert not classify_failure(exc).permanent


def test_retry_after_travels_with_the_error():
    assert classify_failure(TransientDeliveryError("429", retry_after=42.0)).retry_after == 42.0


def test_error_texts_are_one_short_line():
    failure = classify_failure(TransientDeliveryError("first line\n" + "x" * 5000))
    assert failure.message == "first line"
    assert len(classify_failure(TransientDeliveryError("y" * 5000)).message) == MAX_ERROR_CHARS

"""The pure decisions behind "nothing leaks" and "bounded inputs"."""

from __future__ import annotations

import asyncssh
import pytest
from azure.core.exceptions import ResourceNotFoundError
from botocore.exceptions import ClientError
from cryptography.fernet import Fernet

from service.destinations.failures import classify_failure
from service.planning.naming import delivered_name, file_prefix, is_safe_name
from service.planning.payloads import email_too_large, header_text
from service.secrets import REDACTED, SecretBox, redact_settings, scrub

HOOK = "https://hooks.zapier.com/hooks/catch/123456/abcdef/"


def test_a_hook_url_is_shown_as_scheme_and_host_only() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    sealed = box.encrypt_settings({"hook-url": HOOK, "signing-secret": "whsec_x"})
    assert sealed["hook-url"].startswith("fernet:") and HOOK not in str(sealed)
    assert redact_settings(sealed, box) == {
        "hook-url": f"https://hooks.zapier.com/{REDACTED}",
        "signing-secret": REDACTED,
    }
    assert redact_settings(sealed) == {"hook-url": REDACTED, "signing-secret": REDACTED}  # no key: nothing of it
    assert redact_settings({"hook-url": "https://user:pw@h.example:8443/x?t=1"}) == {
        "hook-url": f"https://h.example:8443/{REDACTED}"
    }
    assert box.decrypt_settings(sealed)["hook-url"] == HOOK


def test_error_texts_lose_the_hook_url_whole_or_in_part() -> None:
    settings = {"hook-url": HOOK}
    assert HOOK not in scrub(f"invalid URL: {HOOK}", settings)
    assert "/hooks/catch/123456/abcdef/" not in scrub("POST /hooks/catch/123456/abcdef/ failed", settings)


def test_remote_text_never_becomes_the_error() -> None:
    remote = "The specified container does not exist.\nRequestId:1\nCall +1-555 now"
    azure = ResourceNotFoundError(message=remote)
    azure.error_code = "ContainerNotFound"
    failure = classify_failure(azure)
    assert failure.message == "Azure: ResourceNotFoundError (ContainerNotFound)" and failure.permanent
    s3 = ClientError({"Error": {"Code": "No Such Bucket, call us", "Message": remote}}, "PutObject")
    assert classify_failure(s3).message == "S3: error"
    sftp = asyncssh.SFTPFailure("a long story from the server")
    assert "story" not in classify_failure(sftp).message
    assert "\u2028" not in classify_failure(ValueError("a\u2028b")).message


def test_header_values_are_one_line() -> None:
    for breaker in ("\r", "\n", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x00"):
        assert header_text(f"Order 10{breaker}Bcc: x@evil.example") == "Order 10 Bcc: x@evil.example"
    assert len(header_text("x" * 5000)) <= 900


def test_names_the_service_makes_are_safe_and_others_are_not() -> None:
    prefix = file_prefix("999-63CHGJokGoxPfSba", "6182665224482", "10\u202822\x85")
    made = delivered_name(prefix, "Ti\u2029cket", "pdf")
    assert is_safe_name(made) and "\u2028" not in made
    assert is_safe_name(delivered_name(prefix, "x" * 1000, "pdf"))
    for bad in ("../x", "/etc/passwd", "a\x00b", "..\\x", "a/b", ".", "..", "", ".hidden", "x" * 201, "a\u2028b"):
        assert not is_safe_name(bad), bad


@pytest.mark.parametrize("size", [21 * 1024**2, 1024**3])
def test_the_email_limit_message_says_what_to_do(size: int) -> None:
    message = email_too_large(size, 20 * 1024**2)
    assert "over the 20 MiB limit for e-mail" in message and "SFTP or S3" in message and len(message) < 300

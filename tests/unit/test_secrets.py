import pytest
from cryptography.fernet import Fernet

from service.secrets import REDACTED, SecretBox, SecretKeyError, is_encrypted, redact_settings, scrub

SETTINGS = {"bucket": "b", "access-key-secret": "AKIA", "password-secure": "pw"}


def test_secrets_are_encrypted_and_decrypt_back():
    box = SecretBox(Fernet.generate_key().decode())
    sealed = box.encrypt_settings(SETTINGS)
    assert sealed["bucket"] == "b"
    assert is_encrypted(sealed["access-key-secret"]) and "AKIA" not in sealed["access-key-secret"]
    assert box.decrypt_settings(sealed) == SETTINGS


def test_a_rotated_key_still_opens_old_secrets():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox(old).encrypt_settings(SETTINGS)
    assert SecretBox(f"{new},{old}").decrypt_settings(sealed) == SETTINGS
    with pytest.raises(SecretKeyError):
        SecretBox(new).decrypt_settings(sealed)


def test_redaction_hides_every_secret_setting():
    assert redact_settings(SETTINGS) == {
        "bucket": "b",
        "access-key-secret": REDACTED,
        "password-secure": REDACTED,
    }


def test_missing_or_bad_keys_are_a_clear_error():
    with pytest.raises(SecretKeyError, match="OUTBOUND_SECRET_KEYS"):
        SecretBox("")
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        SecretBox("short")


def test_error_text_loses_secrets_and_url_signatures():
    settings = {
        "password-secure": "hunter22",
        "connection-string-secure": "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=abc",
    }
    text = "login hunter22 failed; GET https://a/c/b?sv=1&se=2&sig=s3cr3t%2B&sp=w denied; AccountKey=xyz;"
    cleaned = scrub(text, settings)
    assert "hunter22" not in cleaned and "s3cr3t" not in cleaned and "xyz" not in cleaned
    assert f"sig={REDACTED}" in cleaned and "sv=1&se=2" in cleaned

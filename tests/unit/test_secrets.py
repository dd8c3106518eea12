import pytest
from cryptography.fernet import Fernet

from service.secrets import REDACTED, SecretBox, SecretKeyError, is_encrypted, redact_settings

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

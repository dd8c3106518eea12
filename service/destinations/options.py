"""Each destination type's integration options: the `settings` object of an integration
configuration, decrypted, as a typed model per type.

The JSON Schema (`schemas/integration.schema.json`) stays the contract: it refused everything else
before a configuration reached a worker, so these models only give its fields names and types (and
take no stricter view of them). An adapter parses its options once, when it is made.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from service.settings import PACKAGE


def _schema_default(integration_type: str, name: str) -> Any:
    """A default the schema declares, so that the contract says it once."""
    schema = orjson.loads((PACKAGE / "schemas" / "integration.schema.json").read_bytes())
    return schema["$defs"][integration_type]["properties"][name]["default"]


SFTP_PORT: int = _schema_default("sftp", "port")


class IntegrationOptions(BaseModel):
    """Options of one destination type. Secrets are never shown in a repr (they are never logged)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class LocalOptions(IntegrationOptions):
    directory: str


class EmailOptions(IntegrationOptions):
    to: str
    subject_prefix: str = Field("", alias="subject-prefix")


class SftpOptions(IntegrationOptions):
    host: str
    port: int = SFTP_PORT
    username: str
    host_key: str = Field(alias="host-key")
    password: str | None = Field(None, alias="password-secure", repr=False)
    private_key: str | None = Field(None, alias="private-key-secure", repr=False)
    directory: str = ""


class S3Options(IntegrationOptions):
    bucket: str
    access_key: str = Field(alias="access-key-secret", repr=False)
    secret_key: str = Field(alias="secret-key-secret", repr=False)
    region: str | None = None
    prefix: str = ""
    endpoint_url: str | None = Field(None, alias="endpoint-url")


class AzureOptions(IntegrationOptions):
    connection_string: str = Field(alias="connection-string-secure", repr=False)
    container: str
    prefix: str = ""


class ZapierOptions(IntegrationOptions):
    hook_url: str = Field(alias="hook-url", repr=False)
    signing_secret: str | None = Field(None, alias="signing-secret", repr=False)

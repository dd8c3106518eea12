"""Integration configurations as tenants write them: the one builder, and settings for the test servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from tests.events import unique
from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY
from tests.stores import account_connection

ORDER_FEED = ("order.created",)
RAW_FEED = ("recipe.created",)


def integration(
    tenant: str, type_: str, settings: dict[str, Any], events: tuple[str, ...] | list[str] = ORDER_FEED, **fields: Any
) -> dict[str, Any]:
    """An enabled integration of the tenant with a fresh id; `fields` add to it or override."""
    return {
        "id": unique(f"{tenant}-{type_}-"),
        "tenant": tenant,
        "type": type_,
        "enabled": True,
        "events": list(events),
        "settings": settings,
        **fields,
    }


def local_integration(tenant: str, events: list[str], **fields: Any) -> dict[str, Any]:
    return integration(tenant, "local", {"directory": tenant}, events, **fields)


def hook_integration(destinations, tenant, events=("order.created",), **fields):
    """A catch-hook integration posting to the test hook named after the tenant."""
    fields = {
        "description": "Production hook",
        "successNotificationList": f"ok-{tenant}@ops.example",
        "failureNotificationList": f"alerts-{tenant}@ops.example",
        **fields,
    }
    return integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{tenant}"}, events, **fields)


def sftp_settings(destinations, directory):
    """Settings for the session's SFTP server, or for the SftpServer given instead."""
    sftp = getattr(destinations, "sftp", destinations)
    return {
        "host": "127.0.0.1",
        "port": sftp.port,
        "username": sftp.username,
        "password-secure": sftp.password,
        "host-key": sftp.host_key,
        "directory": directory,
    }


def s3_settings(destinations, bucket, **extra):
    return {
        "bucket": bucket,
        "access-key-secret": "test",
        "secret-key-secret": "test",
        "endpoint-url": destinations.s3_endpoint,
        **extra,
    }


async def azure_settings(destinations, container):
    account_url = destinations.azure_blob_endpoint
    async with BlobServiceClient.from_connection_string(account_connection(destinations)) as service:
        await service.create_container(container)
    sas = generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(write=True, create=True, read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )
    return {
        "connection-string-secure": f"BlobEndpoint={account_url};SharedAccessSignature={sas}",
        "container": container,
        "prefix": "orders",
    }

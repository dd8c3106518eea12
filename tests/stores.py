"""What the test object stores hold (S3 buckets, Azure containers), read with their own clients."""

from __future__ import annotations

import aioboto3
from azure.storage.blob.aio import BlobServiceClient

from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY


def s3_client(destinations):
    session = aioboto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    return session.client("s3", endpoint_url=destinations.s3_endpoint)


async def make_bucket(destinations, bucket):
    async with s3_client(destinations) as s3:
        await s3.create_bucket(Bucket=bucket)


async def s3_objects(destinations, bucket):
    async with s3_client(destinations) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
        found = {}
        for item in listed.get("Contents", []):
            obj = await s3.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = (await obj["Body"].read(), obj["ContentType"])
        return found


def account_connection(destinations):
    """The emulator account's own key: only the test uses it, to set up and to check."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={destinations.azure_blob_endpoint};"
    )


async def azure_blobs(destinations, container):
    async with BlobServiceClient.from_connection_string(account_connection(destinations)) as service:
        container_client = service.get_container_client(container)
        found = {}
        async for blob in container_client.list_blobs():
            data = await (await container_client.download_blob(blob.name)).readall()
            found[blob.name] = (data, blob.content_settings.content_type)
        return found

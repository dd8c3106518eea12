"""AWS S3 (or an S3-compatible store via `endpoint-url`): multipart upload for large files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from service.destinations.base import Destination, Job, LocalFile, target_path
from service.destinations.options import S3Options
from service.netclients import PolicyBotoSession, PolicyResolver
from service.netpolicy import NetPolicy, check_url

# Parts are read from disk one at a time and sent before the next is read: memory stays near one
# part whatever the file size (the library's upload_file buffered most of a 200 MB file).
PART_BYTES = 8 * 1024**2


class S3Destination(Destination[S3Options]):
    options_model = S3Options

    def __init__(self, options: Mapping[str, Any], policy: NetPolicy, timeout: float) -> None:
        super().__init__(options, policy)
        self.timeout = timeout
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        if self._client is None:
            endpoint = self.options.endpoint_url
            if endpoint:
                await check_url(endpoint, self.policy)
            session = aioboto3.Session(
                aws_access_key_id=self.options.access_key,
                aws_secret_access_key=self.options.secret_key,
                region_name=self.options.region or "us-east-1",
            )
            # Every connection (to the endpoint, or wherever S3 itself sends the client) is judged by the
            # policy when it is made, on aiobotocore's aiohttp session with the policy's connector.
            config = AioConfig(
                connect_timeout=10,
                read_timeout=self.timeout,
                retries={"max_attempts": 2},
                http_session_cls=PolicyBotoSession,
                connector_args={"resolver": PolicyResolver(self.policy)},
            )
            self._client = await self._stack.enter_async_context(
                session.client("s3", endpoint_url=endpoint or None, config=config)
            )
        return self._client

    async def deliver(self, job: Job) -> int:
        async with self._lock:
            client = await self._s3()
        prefix = self.options.prefix
        keys = [target_path(prefix, file.name) for file in job.files]
        for file, key in zip(job.files, keys, strict=True):
            await upload(client, self.options.bucket, key, file)
        return job.total_bytes

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


async def upload(client: Any, bucket: str, key: str, file: LocalFile) -> None:
    # The file's SHA-256 as user metadata, so that `outbound reconcile` can tell a changed object from
    # the delivered one (S3's own SHA-256 checksum of a multipart upload is one of its parts' checksums).
    metadata = {"sha256": file.sha256}
    if file.size <= PART_BYTES:
        body = await asyncio.to_thread(file.path.read_bytes)
        await client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=file.mime_type, Metadata=metadata)
        return
    started = await client.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType=file.mime_type, Metadata=metadata
    )
    upload_id = started["UploadId"]
    try:
        parts = []
        with file.path.open("rb") as source:
            number = 1
            while chunk := await asyncio.to_thread(source.read, PART_BYTES):
                sent = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
                number += 1
        await client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        with contextlib.suppress(ClientError, BotoCoreError):
            await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise

"""AWS S3 (or an S3-compatible store via `endpoint-url`): multipart upload for large files."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioboto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.destinations.base import DeliveryError, Destination, Job, target_path
from service.netpolicy import RefusedDestination, check_url

MULTIPART = TransferConfig(multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4)
PERMANENT_CODES = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


class S3Destination(Destination):
    def __init__(self, settings: dict[str, Any], allow_private: bool, timeout: float) -> None:
        super().__init__(settings, allow_private)
        self.timeout = timeout
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        if self._client is None:
            endpoint = self.settings.get("endpoint-url")
            if endpoint:
                try:
                    await check_url(str(endpoint), allow_private=self.allow_private)
                except RefusedDestination as exc:
                    raise DeliveryError(f"settings.endpoint-url: {exc}", permanent=True) from exc
            session = aioboto3.Session(
                aws_access_key_id=str(self.settings["access-key-secret"]),
                aws_secret_access_key=str(self.settings["secret-key-secret"]),
                region_name=str(self.settings.get("region") or "us-east-1"),
            )
            config = Config(connect_timeout=10, read_timeout=self.timeout, retries={"max_attempts": 2})
            self._client = await self._stack.enter_async_context(
                session.client("s3", endpoint_url=endpoint or None, config=config)
            )
        return self._client

    async def deliver(self, job: Job) -> int:
        async with self._lock:
            client = await self._s3()
        prefix = str(self.settings.get("prefix", ""))
        try:
            for file in job.files:
                await client.upload_file(
                    str(file.path),
                    str(self.settings["bucket"]),
                    target_path(prefix, file.name),
                    ExtraArgs={"ContentType": file.mime_type},
                    Config=MULTIPART,
                )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise DeliveryError(f"S3: {code or 'error'}: {exc}", permanent=code in PERMANENT_CODES) from exc
        except (BotoCoreError, OSError) as exc:
            raise DeliveryError(f"S3: {type(exc).__name__}: {exc}") from exc
        return job.total_bytes

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

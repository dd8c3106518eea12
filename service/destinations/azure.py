"""Azure Blob Storage: a SAS connection string with write access, a container, an optional prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from service.delivery_errors import PermanentDeliveryError
from service.destinations.base import Destination, Job, target_path
from service.destinations.options import AzureOptions
from service.netclients import policy_aiohttp_session
from service.netpolicy import NetPolicy, check_url


class AzureBlobDestination(Destination[AzureOptions]):
    options_model = AzureOptions

    def __init__(self, options: Mapping[str, Any], policy: NetPolicy) -> None:
        super().__init__(options, policy)
        self._service: BlobServiceClient | None = None

    async def _container(self) -> Any:
        if self._service is None:
            # Connections are judged by the policy when made (the transport's aiohttp connector), and
            # redirects are not followed: the SDK would otherwise resend a PUT to wherever 307 points.
            transport = AioHttpTransport(session=policy_aiohttp_session(self.policy), session_owner=True)
            try:
                service = BlobServiceClient.from_connection_string(
                    self.options.connection_string, transport=transport, permit_redirects=False
                )
            except ValueError as exc:
                await transport.close()
                raise PermanentDeliveryError("settings.connection-string-secure is not a connection string") from exc
            try:
                await check_url(service.url, self.policy)
            except BaseException:
                await service.close()
                raise
            self._service = service
        return self._service.get_container_client(self.options.container)

    async def deliver(self, job: Job) -> int:
        prefix = self.options.prefix
        names = [target_path(prefix, file.name) for file in job.files]
        container = await self._container()
        for file, name in zip(job.files, names, strict=True):
            with file.path.open("rb") as data:
                await container.upload_blob(
                    name,
                    data,
                    length=file.size,
                    overwrite=True,
                    content_settings=ContentSettings(content_type=file.mime_type),
                    # Kept with the blob for `outbound reconcile` to compare with the delivered file.
                    metadata={"sha256": file.sha256},
                    max_concurrency=2,
                )
        return job.total_bytes

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
        self._service = None

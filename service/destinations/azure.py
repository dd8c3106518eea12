"""Azure Blob Storage: a SAS connection string with write access, a container, an optional prefix."""

from __future__ import annotations

from typing import Any

from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from service.delivery_errors import PermanentDeliveryError
from service.destinations.base import Destination, Job, target_path
from service.netpolicy import check_url


class AzureBlobDestination(Destination):
    def __init__(self, settings: dict[str, Any], allow_private: bool) -> None:
        super().__init__(settings, allow_private)
        self._service: BlobServiceClient | None = None

    async def _container(self) -> Any:
        if self._service is None:
            try:
                service = BlobServiceClient.from_connection_string(str(self.settings["connection-string-secure"]))
            except ValueError as exc:
                raise PermanentDeliveryError("settings.connection-string-secure is not a connection string") from exc
            try:
                await check_url(service.url, allow_private=self.allow_private)
            except BaseException:
                await service.close()
                raise
            self._service = service
        return self._service.get_container_client(str(self.settings["container"]))

    async def deliver(self, job: Job) -> int:
        container = await self._container()
        prefix = str(self.settings.get("prefix", ""))
        for file in job.files:
            with file.path.open("rb") as data:
                await container.upload_blob(
                    target_path(prefix, file.name),
                    data,
                    length=file.size,
                    overwrite=True,
                    content_settings=ContentSettings(content_type=file.mime_type),
                    max_concurrency=2,
                )
        return job.total_bytes

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
        self._service = None

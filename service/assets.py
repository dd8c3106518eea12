"""Fetching a delivery's files to the worker's disk: streamed, bounded, from allowed hosts only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import orjson

from service.contracts import DeliveryCommand, DeliveryFile
from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.base import LocalFile
from service.netpolicy import RefusedDestination, check_url
from service.planning.naming import file_prefix, manifest_name
from service.planning.payloads import manifest

CHUNK = 1024 * 1024


class AssetFetcher:
    """One shared HTTP client for every download of the worker."""

    def __init__(self, *, allowed_hosts: frozenset[str], allow_private: bool, max_bytes: int, timeout: float) -> None:
        self.allowed_hosts = allowed_hosts
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        # Redirects are not followed: the target would escape the asset-host check.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def fetch_all(self, command: DeliveryCommand, folder: Path) -> list[LocalFile]:
        """Every file of the command, then its manifest, in `folder`."""
        files = [await self.fetch(f, folder) for f in command.files]
        name = manifest_name(file_prefix(command.recipeId, command.orderId, command.orderNumber))
        body = orjson.dumps(
            manifest(command, [(f.name, f.mime_type, f.size, f.sha256) for f in files]), option=orjson.OPT_INDENT_2
        )
        path = folder / name
        path.write_bytes(body)
        files.append(LocalFile(name, "application/json", "", path, len(body), hashlib.sha256(body).hexdigest()))
        return files

    async def fetch(self, file: DeliveryFile, folder: Path) -> LocalFile:
        try:
            await check_url(file.url, allow_private=self.allow_private, allowed_hosts=self.allowed_hosts)
        except RefusedDestination as exc:
            raise RefusedDestination(f"file {file.name}: {exc}") from exc
        path = folder / file.name
        digest = hashlib.sha256()
        size = 0
        try:
            async with self.client.stream("GET", file.url) as response:
                if response.status_code != 200:
                    permanent = response.status_code in (401, 403, 410) or 300 <= response.status_code < 400
                    error = PermanentDeliveryError if permanent else TransientDeliveryError
                    raise error(f"file {file.name}: asset host answered HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise PermanentDeliveryError(f"file {file.name}: {declared} bytes, over the limit")
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise PermanentDeliveryError(
                                f"file {file.name}: more than the limit of {self.max_bytes} bytes"
                            )
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"file {file.name}: download failed: {type(exc).__name__}") from exc
        return LocalFile(file.name, file.mimeType, file.url, path, size, digest.hexdigest())

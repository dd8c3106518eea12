"""Fetching a delivery's files to the worker's disk: streamed, bounded, from allowed hosts only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import orjson

from service.contracts import DeliveryCommand, DeliveryFile
from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.base import LocalFile, TotalLimit, checked_name
from service.netclients import policy_http_client
from service.netpolicy import NetPolicy, RefusedDestination, check_url
from service.planning.naming import file_prefix, manifest_name
from service.planning.payloads import manifest

CHUNK = 1024 * 1024


class AssetFetcher:
    """One shared HTTP client for every download of the worker."""

    def __init__(self, *, allowed_hosts: frozenset[str], policy: NetPolicy, max_bytes: int, timeout: float) -> None:
        self.allowed_hosts = allowed_hosts
        self.policy = policy
        self.max_bytes = max_bytes
        # Redirects are not followed: the target would escape the asset-host check.
        self.client = policy_http_client(
            policy,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def fetch_all(
        self, command: DeliveryCommand, folder: Path, limit: TotalLimit | None = None
    ) -> list[LocalFile]:
        """Every file of the command, then its manifest, in `folder`; at most `limit` bytes in all."""
        files: list[LocalFile] = []
        for file in command.files:
            budget = None if limit is None else limit.bytes - sum(f.size for f in files)
            files.append(await self.fetch(file, folder, budget, limit))
        name = manifest_name(file_prefix(command.recipeId, command.orderId, command.orderNumber))
        body = orjson.dumps(
            manifest(command, [(f.name, f.mime_type, f.size, f.sha256) for f in files]), option=orjson.OPT_INDENT_2
        )
        path = folder / name
        path.write_bytes(body)
        files.append(LocalFile(name, "application/json", "", path, len(body), hashlib.sha256(body).hexdigest()))
        return files

    async def fetch(
        self, file: DeliveryFile, folder: Path, budget: int | None = None, limit: TotalLimit | None = None
    ) -> LocalFile:
        name = checked_name(file.name)
        try:
            await check_url(file.url, self.policy, allowed_hosts=self.allowed_hosts)
        except RefusedDestination as exc:
            raise RefusedDestination(f"file {name}: {exc}") from exc
        path = folder / name
        digest = hashlib.sha256()
        size = 0
        try:
            async with self.client.stream("GET", file.url) as response:
                status = response.status_code
                if 300 <= status < 400:
                    raise RefusedDestination(
                        f"file {name}: the asset host answered a redirect (HTTP {status}), not followed"
                    )
                if status != 200:
                    error = PermanentDeliveryError if status in (401, 403, 410) else TransientDeliveryError
                    raise error(f"file {name}: asset host answered HTTP {status}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise PermanentDeliveryError(f"file {name}: {declared} bytes, over the limit")
                if limit is not None and budget is not None and declared > budget:
                    raise limit.exceeded(limit.bytes - budget + declared)
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise PermanentDeliveryError(f"file {name}: more than the limit of {self.max_bytes} bytes")
                        if limit is not None and budget is not None and size > budget:
                            raise limit.exceeded(limit.bytes - budget + size)
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"file {name}: download failed: {type(exc).__name__}") from exc
        return LocalFile(name, file.mimeType, file.url, path, size, digest.hexdigest())

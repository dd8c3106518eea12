"""Fetching a delivery's files to the worker's disk: streamed, bounded, from allowed hosts only."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

from service.contracts import DeliveryCommand, DeliveryFile
from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.base import LocalFile, TotalLimit, checked_name
from service.netclients import policy_aiohttp_session
from service.netpolicy import NetPolicy, RefusedDestination, check_url
from service.planning.naming import file_prefix, manifest_name
from service.planning.payloads import manifest
from service.planning.preflight import FileCheck, PreflightMode, type_of_name

CHUNK = 1024 * 1024
# Downloads of one command running at once (the worker runs several deliveries too: the shared
# client's 32 connections are for all of them).
FETCHES_AT_ONCE = 4
IDENTITY = {"Accept-Encoding": "identity"}


class AssetFetcher:
    """One shared HTTP client for every download of the worker."""

    def __init__(self, *, allowed_hosts: frozenset[str], policy: NetPolicy, max_bytes: int, timeout: float) -> None:
        self.allowed_hosts = allowed_hosts
        self.policy = policy
        self.max_bytes = max_bytes
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=10.0, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the loop it was made in. aiohttp rather
        # than httpx: a small file costs about a fifth of the CPU (a sale sends five per order).
        if self._session is None:
            self._session = policy_aiohttp_session(
                self.policy, timeout=self.timeout, every_call_refuses_redirects=True, limit=32
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch_all(
        self,
        command: DeliveryCommand,
        folder: Path,
        limit: TotalLimit | None = None,
        *,
        preflight: PreflightMode = "strict",
    ) -> list[LocalFile]:
        """Every file of the command, then its manifest, in `folder`; at most `limit` bytes in all; each
        file checked as it streams in (`preflight`), so a bad one fails the delivery before any of it is
        handed to the destination.

        Up to FETCHES_AT_ONCE files download at once (one after another, each paid its own round
        trips and slow start); the manifest keeps the command's order. A failure stops the files after
        it in the command's order and lets the ones before it finish, so the error raised is the one
        downloading them one by one would have raised: that of the earliest file that fails."""
        for file in command.files:
            checked_name(file.name)  # a refused name fails the delivery before anything is fetched
        tally = _Tally(limit)
        gate = asyncio.Semaphore(FETCHES_AT_ONCE)  # first come, first served: in the command's order

        async def one(file: DeliveryFile) -> LocalFile:
            async with gate:
                return await self.fetch(file, folder, tally, preflight=preflight)

        downloads = [asyncio.create_task(one(file)) for file in command.files]

        def stop_later_ones(index: int) -> Callable[[asyncio.Task[LocalFile]], None]:
            def stop(download: asyncio.Task[LocalFile]) -> None:
                if not download.cancelled() and download.exception() is not None:
                    for later in downloads[index + 1 :]:
                        later.cancel()

            return stop

        for index, download in enumerate(downloads):
            download.add_done_callback(stop_later_ones(index))
        # Cancelling this attempt cancels every download and waits for them (gather does both).
        outcomes = await asyncio.gather(*downloads, return_exceptions=True)
        files: list[LocalFile] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the earliest failure: every download after it was cancelled
            files.append(outcome)
        name = manifest_name(file_prefix(command.recipeId, command.orderId, command.orderNumber))
        body = orjson.dumps(
            manifest(command, [(f.name, f.mime_type, f.size, f.sha256) for f in files]), option=orjson.OPT_INDENT_2
        )
        path = folder / name
        path.write_bytes(body)
        files.append(LocalFile(name, "application/json", "", path, len(body), hashlib.sha256(body).hexdigest()))
        return files

    async def fetch(
        self, file: DeliveryFile, folder: Path, tally: _Tally | None = None, *, preflight: PreflightMode = "strict"
    ) -> LocalFile:
        name = checked_name(file.name)
        tally = tally or _Tally(None)
        check = FileCheck(name, file.type or type_of_name(name), file.mimeType, preflight)
        try:
            await check_url(file.url, self.policy, allowed_hosts=self.allowed_hosts)
        except RefusedDestination as exc:
            raise RefusedDestination(f"file {name}: {exc}") from exc
        path = folder / name
        digest = hashlib.sha256()
        size = 0
        try:
            # Redirects are not followed: the target would escape the asset-host check.
            # The bytes as stored (identity): their length and SHA-256 are what the manifest promises.
            async with self.session.get(file.url, allow_redirects=False, headers=IDENTITY) as response:
                status = response.status
                if 300 <= status < 400:
                    raise RefusedDestination(
                        f"file {name}: the asset host answered a redirect (HTTP {status}), not followed"
                    )
                if status != 200:
                    error = PermanentDeliveryError if status in (401, 403, 410) else TransientDeliveryError
                    raise error(f"file {name}: asset host answered HTTP {status}")
                declared = response.content_length or 0
                if declared > self.max_bytes:
                    raise PermanentDeliveryError(f"file {name}: {declared} bytes, over the limit")
                # The length to hold the arrived bytes to: only for a body sent as stored (a host that
                # compresses anyway announces the compressed length, and aiohttp hands out the bytes decoded).
                encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
                announced = None if encoded else response.content_length
                tally.claim(declared)
                claimed = declared
                with path.open("wb") as out:
                    try:
                        async for chunk in response.content.iter_chunked(CHUNK):
                            size += len(chunk)
                            if size > self.max_bytes:
                                raise PermanentDeliveryError(
                                    f"file {name}: more than the limit of {self.max_bytes} bytes"
                                )
                            if size > claimed:
                                tally.claim(size - claimed)
                                claimed = size
                            check.feed(chunk)
                            digest.update(chunk)
                            out.write(chunk)
                    except aiohttp.ClientPayloadError:
                        # The host closed the connection before the length it announced (aiohttp's parser
                        # says so this way): a file cut off in transfer is the pre-flight length check's case.
                        cut = check.cut_off(size, announced)
                        if cut is not None:
                            raise cut from None
                        raise
                check.finish(arrived=size, announced=announced)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientDeliveryError(f"file {name}: download failed: {type(exc).__name__}") from exc
        return LocalFile(name, file.mimeType, file.url, path, size, digest.hexdigest())


class _Tally:
    """A command's bytes in all, against its destination's limit: each file counts what it brought so
    far, or the length it declared when that is more, so a download stops as soon as the sum is over
    (at once for a declared length) even while other files of the command are still coming."""

    def __init__(self, limit: TotalLimit | None) -> None:
        self.limit = limit
        self.known = 0

    def claim(self, more: int) -> None:
        self.known += more
        if self.limit is not None and self.known > self.limit.bytes:
            raise self.limit.exceeded(self.known)

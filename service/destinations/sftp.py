"""SFTP: the host key is verified against `host-key` (no trust on first use); each file is uploaded
under a temporary name, its remote size checked, then renamed to its final name atomically."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import uuid
from collections.abc import Mapping
from typing import Any

import asyncssh

from service.delivery_errors import TransientDeliveryError
from service.destinations.base import Destination, Job, checked_name, target_path
from service.destinations.options import SftpOptions
from service.netpolicy import NetPolicy, RefusedDestination, check_host

SFTP_BLOCK = 64 * 1024
SFTP_REQUESTS = 16


class SftpDestination(Destination[SftpOptions]):
    options_model = SftpOptions

    def __init__(self, options: Mapping[str, Any], policy: NetPolicy, timeout: float) -> None:
        super().__init__(options, policy)
        self.timeout = timeout
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is not None and self._connection is not None and not self._connection.is_closed():
            return self._sftp
        o = self.options
        host, port = o.host, o.port
        # Fail early like every destination, then connect to an address the policy judged for this
        # connection, never to another answer for the name.
        await check_host(host, port, self.policy)
        addresses = await self.policy.addresses(host, port)
        host_key = asyncssh.import_public_key(o.host_key)
        login: dict[str, Any] = {"username": o.username, "known_hosts": ([host_key], [], [])}
        if o.private_key is not None:
            login["client_keys"] = [asyncssh.import_private_key(o.private_key)]
        else:
            login["client_keys"] = None
        if o.password is not None:
            login["password"] = o.password
        self._connection = await asyncio.wait_for(
            connect_first(addresses, port, connect_timeout=self.timeout, **login), self.timeout
        )
        self._sftp = await self._connection.start_sftp_client()
        return self._sftp

    async def deliver(self, job: Job) -> int:
        folder = self.options.directory.strip("/") or "."
        finals = [target_path(folder if folder != "." else "", checked_name(file.name)) for file in job.files]
        async with self._lock:
            try:
                sftp = await self._client()
                if folder != ".":
                    await sftp.makedirs(folder, exist_ok=True)
                for file, final in zip(job.files, finals, strict=True):
                    temporary = posixpath.join(posixpath.dirname(final), f".{file.name}.{uuid.uuid4().hex}.part")
                    # Few, small outstanding writes: asyncssh would otherwise queue most of a large file.
                    await sftp.put(str(file.path), temporary, block_size=SFTP_BLOCK, max_requests=SFTP_REQUESTS)
                    await put_in_place(sftp, temporary, final, file.size)
            except BaseException:
                # A connection in an unknown state is not reused (classify_failure says what went wrong).
                await self.close()
                raise
        return job.total_bytes

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            await self._connection.wait_closed()
        self._connection = None
        self._sftp = None


async def connect_first(addresses: list[str], port: int, **options: Any) -> asyncssh.SSHClientConnection:
    failure: OSError | None = None
    for address in addresses:
        try:
            return await asyncssh.connect(address, port, **options)
        except OSError as exc:  # the next address of the name may answer
            failure = exc
    if failure is None:
        raise RefusedDestination("SFTP: the host has no address")
    raise failure


async def put_in_place(sftp: asyncssh.SFTPClient, temporary: str, final: str, size: int) -> None:
    """Give an uploaded temporary file its final name, only once it is whole: a short file never
    appears under the final name. The server's posix-rename replaces the old file atomically; a server
    without it refuses to rename over a file, so there the old one is removed first (a moment with no
    file, never a wrong one)."""
    remote = (await sftp.stat(temporary)).size
    if remote != size:
        with contextlib.suppress(asyncssh.SFTPError):
            await sftp.remove(temporary)
        raise TransientDeliveryError(f"SFTP: {posixpath.basename(final)} is {remote} bytes on the server, {size} sent")
    try:
        await sftp.posix_rename(temporary, final)
    except asyncssh.SFTPOpUnsupported:
        if await sftp.exists(final):
            await sftp.remove(final)
        await sftp.rename(temporary, final)

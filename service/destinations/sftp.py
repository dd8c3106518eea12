"""SFTP: the host key is verified against `host-key` (no trust on first use); each file is uploaded
under a temporary name, renamed, and its remote size checked."""

from __future__ import annotations

import asyncio
import posixpath
import uuid
from typing import Any

import asyncssh

from service.destinations.base import DeliveryError, Destination, Job, target_path
from service.netpolicy import RefusedDestination, check_host

SFTP_BLOCK = 64 * 1024
SFTP_REQUESTS = 16


class SftpDestination(Destination):
    def __init__(self, settings: dict[str, Any], allow_private: bool, timeout: float) -> None:
        super().__init__(settings, allow_private)
        self.timeout = timeout
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is not None and self._connection is not None and not self._connection.is_closed():
            return self._sftp
        s = self.settings
        host, port = str(s["host"]), int(s.get("port", 22))
        try:
            await check_host(host, port, allow_private=self.allow_private)
            host_key = asyncssh.import_public_key(str(s["host-key"]))
        except RefusedDestination as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise DeliveryError("settings.host-key is not an OpenSSH public key", permanent=True) from exc
        options: dict[str, Any] = {"username": str(s["username"]), "known_hosts": ([host_key], [], [])}
        if "private-key-secure" in s:
            options["client_keys"] = [asyncssh.import_private_key(str(s["private-key-secure"]))]
        else:
            options["client_keys"] = None
        if "password-secure" in s:
            options["password"] = str(s["password-secure"])
        self._connection = await asyncio.wait_for(
            asyncssh.connect(host, port, connect_timeout=self.timeout, **options), self.timeout
        )
        self._sftp = await self._connection.start_sftp_client()
        return self._sftp

    async def deliver(self, job: Job) -> int:
        async with self._lock:
            try:
                sftp = await self._client()
                folder = str(self.settings.get("directory", "")).strip("/") or "."
                if folder != ".":
                    await sftp.makedirs(folder, exist_ok=True)
                for file in job.files:
                    final = target_path(folder if folder != "." else "", file.name)
                    temporary = posixpath.join(posixpath.dirname(final), f".{file.name}.{uuid.uuid4().hex}.part")
                    # Few, small outstanding writes: asyncssh would otherwise queue most of a large file.
                    await sftp.put(str(file.path), temporary, block_size=SFTP_BLOCK, max_requests=SFTP_REQUESTS)
                    if await sftp.exists(final):
                        await sftp.remove(final)
                    await sftp.rename(temporary, final)
                    remote = (await sftp.stat(final)).size
                    if remote != file.size:
                        raise DeliveryError(f"SFTP: {file.name} is {remote} bytes on the server, {file.size} sent")
            except asyncssh.HostKeyNotVerifiable as exc:
                await self.close()
                raise DeliveryError(
                    "SFTP: the server's host key does not match settings.host-key", permanent=True
                ) from exc
            except asyncssh.PermissionDenied as exc:
                await self.close()
                raise DeliveryError("SFTP: login refused (username, password or key)", permanent=True) from exc
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                await self.close()
                raise DeliveryError(f"SFTP: {type(exc).__name__}: {exc}") from exc
        return job.total_bytes

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            await self._connection.wait_closed()
        self._connection = None
        self._sftp = None

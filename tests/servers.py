"""Real destination servers on 127.0.0.1 for the test session: SMTP, SFTP, S3, Azure Blob, an HTTP
host for recipe assets and a Zapier-like catch hook."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import asyncssh
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.deployments import load_local_kafka
from tests.files import big_parts

BLOCK = hashlib.sha256(b"recipe-outbound").digest() * (1024 * 1024 // 32)  # 1 MiB of a known pattern


def free_port() -> int:
    return int(load_local_kafka().free_port())


def pattern_bytes(size: int) -> bytes:
    whole, rest = divmod(size, len(BLOCK))
    return BLOCK * whole + BLOCK[:rest]


# ---------------------------------------------------------------- assets and catch hooks (aiohttp)


async def serve(app: web.Application, port: int) -> web.AppRunner:
    """Serve `app` on 127.0.0.1:`port`; the runner's cleanup() stops it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@dataclass
class HttpServers:
    """Assets at /assets/<name> (files put in `assets`; /short/<name> sends half and hangs up) and
    /big/<bytes> (generated, streamed; `?as=dst` a valid DST of that size);
    catch hooks at /hook/<name> answering what is queued in `hook_statuses[name]` (then 200): a
    status, or (status, headers, seconds to wait before answering)."""

    port: int
    assets: dict[str, bytes] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    hook_requests: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=lambda: defaultdict(list))
    hook_statuses: dict[str, list[int | tuple[int, dict[str, str], float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # name -> fn(headers, times this webhook-id was seen before) -> answer, when a queue is not enough.
    hook_responders: dict[str, Callable[[dict[str, str], int], int | tuple[int, dict[str, str], float]]] = field(
        default_factory=dict
    )
    hook_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hook_most_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hook_answered: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # bodies, as answered
    # name -> when each request arrived, by the server's own clock (seconds, monotonic)
    hook_arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # name -> bytes of body to answer with (streamed), and how many of them the client took.
    hook_bodies: dict[str, int] = field(default_factory=dict)
    hook_body_sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_asset(self, name: str, data: bytes) -> str:
        self.assets[name] = data
        return f"{self.base}/assets/{name}"

    async def start(self) -> HttpServers:
        app = web.Application(client_max_size=10 * 1024**2)
        app.router.add_get("/assets/{name}", self._asset)
        app.router.add_get("/big/{size}", self._big)
        app.router.add_get("/stream/{size}", self._stream)
        app.router.add_get("/short/{name}", self._short)
        app.router.add_post("/hook/{name}", self._hook)
        self.runner = await serve(app, self.port)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _asset(self, request: web.Request) -> web.Response:
        self.requested.append(request.match_info["name"])
        data = self.assets.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _chunks(self, request: web.Request) -> Iterator[bytes]:
        """/big and /stream's body: the known pattern, or with `?as=dst` a valid file of that type."""
        size = int(request.match_info["size"])
        kind = request.query.get("as")
        if kind:
            yield from big_parts(kind, size)
            return
        sent = 0
        while sent < size:
            chunk = BLOCK[: min(len(BLOCK), size - sent)]
            yield chunk
            sent += len(chunk)

    async def _big(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        for chunk in self._chunks(request):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Like /big, but chunked with no Content-Length: the size is known only by reading it all."""
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for chunk in self._chunks(request):
                await response.write(chunk)
        except ConnectionError:
            return response  # the client stopped reading, as it may
        await response.write_eof()
        return response

    async def _short(self, request: web.Request) -> web.StreamResponse:
        """Announces the asset's length (Content-Length), sends only its first half, then closes the
        connection: a file cut off in transfer."""
        data = self.assets.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    def hook_ids(self, name: str) -> list[str]:
        """The webhook-id of every request the hook received, in order."""
        return [headers.get("webhook-id", "") for headers, _ in self.hook_requests[name]]

    async def _hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hook_arrivals[name].append(time.monotonic())
        headers = dict(request.headers)
        seen = self.hook_ids(name).count(headers.get("webhook-id", ""))
        self.hook_requests[name].append((headers, await request.read()))
        queued = self.hook_statuses[name]
        responder = self.hook_responders.get(name)
        answer = responder(headers, seen) if responder else queued.pop(0) if queued else 200
        status, reply_headers, delay = answer if isinstance(answer, tuple) else (answer, {}, 0.0)
        self.hook_in_flight[name] += 1
        self.hook_most_in_flight[name] = max(self.hook_most_in_flight[name], self.hook_in_flight[name])
        try:
            if delay:
                await asyncio.sleep(delay)  # a slow destination, as the test asked for
        finally:
            self.hook_in_flight[name] -= 1
        self.hook_answered[name].append(await request.read())
        if name in self.hook_bodies:
            return await self._long_answer(request, name, status)
        return web.Response(status=status, text="{}", content_type="application/json", headers=reply_headers)

    async def _long_answer(self, request: web.Request, name: str, status: int) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Length": str(self.hook_bodies[name])})
        await response.prepare(request)
        try:
            while self.hook_body_sent[name] < self.hook_bodies[name]:
                chunk = BLOCK[: min(64 * 1024, self.hook_bodies[name] - self.hook_body_sent[name])]
                await response.write(chunk)
                self.hook_body_sent[name] += len(chunk)
        except ConnectionError:
            return response  # the client stopped reading, as it may
        await response.write_eof()
        return response


# ---------------------------------------------------------------- SMTP (aiosmtpd)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    controller: Controller


def start_smtp() -> SmtpServer:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, data_size_limit=300 * 1024**2)
    controller.start()
    return SmtpServer(port, inbox, controller)


# ---------------------------------------------------------------- SFTP (asyncssh server)


@dataclass
class SftpServer:
    port: int
    root: Path
    host_key: str  # OpenSSH public key line, as an integration's `host-key`
    username: str
    password: str
    server: Any
    key: Any = None  # the host's private key, to start the same server again


class ShortWritingSftpServer(asyncssh.SFTPServer):
    """A real SFTP server that, for paths containing one of `short_writes`, loses the last byte of
    every write: an upload that arrives short, as a full disk or a broken proxy would leave it."""

    short_writes: set[str] = set()

    def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
        handle = super().open(path, pflags, attrs)
        if any(marker.encode() in path for marker in self.short_writes):
            handle.short_writes = True
        return handle

    def write(self, file_obj: Any, offset: int, data: bytes) -> Any:
        if getattr(file_obj, "short_writes", False):
            data = data[:-1]
        return super().write(file_obj, offset, data)


async def start_sftp(
    port: int | None = None, key: asyncssh.SSHKey | None = None, root: Path | None = None
) -> SftpServer:
    """A new SFTP server, or (given its port, key and root) the same server started again after a stop."""
    root = root or Path(tempfile.mkdtemp(prefix="outbound-sftp-"))
    key = key or asyncssh.generate_private_key("ssh-ed25519")
    username, password = "outbound", "sftp-test-password"

    class Server(asyncssh.SSHServer):
        def begin_auth(self, user: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, user: str, given: str) -> bool:
            return user == username and given == password

    port = port or free_port()
    server = await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[key],
        server_factory=Server,
        sftp_factory=lambda chan: ShortWritingSftpServer(chan, chroot=str(root)),
        allow_scp=False,
        reuse_address=True,
    )
    public = key.export_public_key("openssh").decode().strip()
    return SftpServer(port, root, public, username, password, server, key)


class SilentServer:
    """A TCP listener that takes connections and never says a word (a destination that hangs) until
    `release()`: from then on it hangs up on every connection, those held and new ones."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> SilentServer:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.released.wait()
            writer.close()

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def release(self) -> None:
        self.released.set()

    async def stop(self) -> None:
        self.release()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# ---------------------------------------------------------------- S3 (moto) and Azure (Azurite)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    home: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def start_moto() -> Process:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="outbound-moto-"))
    exe = shutil.which("moto_server", path=str(Path(os.sys.executable).parent))  # type: ignore[attr-defined]
    assert exe, "moto_server is installed with the test extras"
    with (home / "moto.log").open("wb") as log:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    await wait_port(port, proc)
    return Process(proc, port, home)


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


async def start_azurite() -> Process:
    cache = Path(os.environ.get("OUTBOUND_CACHE", Path.home() / ".cache" / "recipe-outbound"))
    exe = cache / "azurite-3.37.0" / "node_modules" / ".bin" / "azurite-blob"
    assert exe.exists(), "scripts/bootstrap installs Azurite"
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="outbound-azurite-"))
    with (home / "azurite.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(exe),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(home),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    await wait_port(port, proc)
    return Process(proc, port, home)


@dataclass
class Destinations:
    http: HttpServers
    smtp: SmtpServer
    sftp: SftpServer
    s3: Process
    azure: Process

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3.port}"

    @property
    def azure_blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.azure.port}/{AZURITE_ACCOUNT}"

    def worker_env(self) -> dict[str, str]:
        return {
            "OUTBOUND_ALLOW_PRIVATE_DESTINATIONS": "true",
            "OUTBOUND_ALLOW_PRIVATE_ASSET_HOSTS": "true",
            "OUTBOUND_ALLOW_HTTP_HOOKS": "true",
            "OUTBOUND_ASSET_HOSTS": f"127.0.0.1:{self.http.port}",
            "OUTBOUND_SMTP_HOST": "127.0.0.1",
            "OUTBOUND_SMTP_PORT": str(self.smtp.port),
            "OUTBOUND_SMTP_FROM": "outbound@test.example",
            "OUTBOUND_RETRY_DELAYS_SECONDS": "2,3",
            # A killed worker's partitions move on after 10 s instead of a minute.
            "OUTBOUND_BROKER_SESSION_TIMEOUT_SECONDS": "10",
        }


async def start_destinations() -> Destinations:
    http = await HttpServers(free_port()).start()
    smtp = start_smtp()
    sftp = await start_sftp()
    s3, azure = await asyncio.gather(start_moto(), start_azurite())
    return Destinations(http, smtp, sftp, s3, azure)


async def stop_destinations(d: Destinations) -> None:
    await d.http.stop()
    d.smtp.controller.stop()
    d.sftp.server.close()
    d.s3.stop()
    d.azure.stop()

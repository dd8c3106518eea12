"""A command's files download a few at a time, against real local asset hosts: the manifest keeps the
command's order, every limit (per file, in all, redirects, statuses) still holds, and each file is
checked as it streams in."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from service.assets import FETCHES_AT_ONCE, AssetFetcher
from service.contracts import DeliveryCommand, DeliveryFile
from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.base import TotalLimit
from service.netpolicy import NetPolicy, RefusedDestination
from service.planning.preflight import PreflightFailed
from tests.files import good_file
from tests.servers import HttpServers, free_port, serve

pytestmark = pytest.mark.integration

MiB = 1024**2
DEADLINE = 5.0  # how long the slow host waits for overlapping requests before it answers anyway


class SlowAssetHost:
    """Holds every answer until FETCHES_AT_ONCE requests overlap (or the last ones of the command have
    come), and records the most that were ever in flight; `/slow/first-*` is answered only after the
    rest of its batch was, so the first file of a command finishes last."""

    def __init__(self) -> None:
        self.port = free_port()
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen = 0
        self.expected = 0
        self.answered: list[str] = []
        self.changed = asyncio.Condition()
        self.runner: web.AppRunner | None = None

    async def start(self) -> SlowAssetHost:
        app = web.Application()
        app.router.add_get("/slow/{name}", self._slow)
        app.router.add_get("/status/{code}", self._status)
        self.runner = await serve(app, self.port)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def reset(self, expected: int) -> None:
        self.in_flight = self.most_in_flight = self.seen = 0
        self.expected = expected
        self.answered = []

    async def _wait(self, condition, timeout: float = DEADLINE) -> None:
        # On the deadline it answers anyway: a client that asks one at a time still gets its files, slowly.
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait_for(condition), timeout)

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        async with self.changed:
            self.in_flight += 1
            self.seen += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.changed.notify_all()
        await self._wait(lambda: self.in_flight >= FETCHES_AT_ONCE or self.seen == self.expected)
        if name.startswith("first-"):
            await self._wait(lambda: len(self.answered) >= min(FETCHES_AT_ONCE, self.expected) - 1)
        body = name.encode() * 1000
        response = web.Response(body=body, content_type="application/octet-stream")
        async with self.changed:
            self.in_flight -= 1
            self.answered.append(name)
            self.changed.notify_all()
        return response

    async def _status(self, request: web.Request) -> web.Response:
        """Answers the status; `?last` only once every other request of the command was answered."""
        code = int(request.match_info["code"])
        if "last" in request.query:
            await self._wait(lambda: len(self.answered) >= self.expected - 1)
        headers = {"Location": "http://169.254.169.254/"} if code in (301, 302, 307) else {}
        async with self.changed:
            self.answered.append(request.path)
            self.changed.notify_all()
        return web.Response(status=code, headers=headers)


@pytest.fixture(scope="module")
async def slow_host() -> AsyncIterator[SlowAssetHost]:
    host = await SlowAssetHost().start()
    yield host
    await host.stop()


@pytest.fixture
async def fetcher(slow_host: SlowAssetHost, assets: HttpServers) -> AsyncIterator[AssetFetcher]:
    hosts = frozenset({f"127.0.0.1:{slow_host.port}", f"127.0.0.1:{assets.port}"})
    running = AssetFetcher(
        allowed_hosts=hosts, policy=NetPolicy(True, what="asset host"), max_bytes=64 * MiB, timeout=30
    )
    yield running
    await running.close()


def command(urls: list[str], names: list[str] | None = None) -> DeliveryCommand:
    # Of no type the pre-flight checks know (the bodies here are patterns): empty files and error pages
    # are all they look for.
    names = names or [f"999-r-{i}-Front.bin" for i in range(len(urls))]
    return DeliveryCommand(
        deliveryId="d-1",
        integrationId="i-1",
        integrationType="local",
        tenant="acme",
        eventType="recipe.created",
        eventId="e-1",
        recipeId="999-r",
        files=[
            DeliveryFile(kind="production", name=name, mimeType="application/octet-stream", url=url)
            for name, url in zip(names, urls, strict=True)
        ],
        createdAt=datetime(2026, 12, 2, tzinfo=UTC),
    )


async def test_files_download_four_at_a_time_and_the_manifest_keeps_their_order(
    fetcher: AssetFetcher, slow_host: SlowAssetHost, tmp_path: Path
):
    names = ["first-0", *(f"next-{i}" for i in range(1, 6))]
    slow_host.reset(len(names))
    sent = command([f"http://127.0.0.1:{slow_host.port}/slow/{name}" for name in names])
    started = time.monotonic()
    files = await fetcher.fetch_all(sent, tmp_path)
    took = time.monotonic() - started
    assert slow_host.most_in_flight == FETCHES_AT_ONCE == 4  # overlapping, and never more than 4
    assert slow_host.answered[0] != "first-0"  # the first file finished after others ...
    assert [f.name for f in files[:-1]] == [f.name for f in sent.files]  # ... and is still listed first
    listed = orjson.loads(files[-1].path.read_bytes())["files"]
    assert [entry["name"] for entry in listed] == [f.name for f in sent.files]
    for file, name in zip(files[:-1], names, strict=True):
        body = name.encode() * 1000
        assert file.path.read_bytes() == body and file.sha256 == hashlib.sha256(body).hexdigest()
    assert took < DEADLINE  # no request waited out the host's deadline


async def test_the_limit_in_all_counts_every_download_at_once(fetcher: AssetFetcher, assets: HttpServers, tmp_path):
    limit = TotalLimit(20 * MiB, lambda size: PermanentDeliveryError(f"{size} bytes, over the 20 MiB limit"))
    declared = command([f"{assets.base}/big/{8 * MiB}"] * 3)
    (tmp_path / "declared").mkdir()
    with pytest.raises(PermanentDeliveryError, match=f"^{24 * MiB} bytes, over the 20 MiB limit$"):
        await fetcher.fetch_all(declared, tmp_path / "declared", limit)
    # No declared lengths: the two downloads' bytes are summed as they come, and both stop there.
    streamed = command([f"{assets.base}/stream/{12 * MiB}"] * 2)
    (tmp_path / "streamed").mkdir()
    with pytest.raises(PermanentDeliveryError, match="over the 20 MiB limit"):
        await fetcher.fetch_all(streamed, tmp_path / "streamed", limit)
    written = [p.stat().st_size for p in (tmp_path / "streamed").iterdir()]
    assert len(written) == 2 and all(written) and sum(written) <= 20 * MiB


async def test_each_file_keeps_its_own_limit_and_errors(fetcher: AssetFetcher, assets: HttpServers, tmp_path):
    fetcher.max_bytes = 2 * MiB
    with pytest.raises(PermanentDeliveryError, match=r"^file 999-r-1-Front.bin: 3145728 bytes, over the limit$"):
        await fetcher.fetch_all(command([assets.add_asset("small", b"x"), f"{assets.base}/big/{3 * MiB}"]), tmp_path)
    with pytest.raises(PermanentDeliveryError, match=r"more than the limit of 2097152 bytes$"):
        await fetcher.fetch_all(command([f"{assets.base}/stream/{3 * MiB}"]), tmp_path)


async def test_the_earliest_failing_file_in_the_commands_order_is_the_error(
    fetcher: AssetFetcher, slow_host: SlowAssetHost, assets: HttpServers, tmp_path: Path
):
    base = f"http://127.0.0.1:{slow_host.port}"
    slow_host.reset(3)
    # The first file fails last, after the others failed at once: its error is the one raised.
    urls = [f"{base}/status/503?last", f"{base}/status/403", f"{base}/status/302"]
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match=r"^file 999-r-0-Front.bin: asset host answered HTTP 503$"):
        await fetcher.fetch_all(command(urls), tmp_path)
    assert time.monotonic() - started < DEADLINE and len(slow_host.answered) == 3  # all three asked at once
    with pytest.raises(RefusedDestination, match=r"answered a redirect \(HTTP 302\), not followed$"):
        await fetcher.fetch_all(command(urls[2:]), tmp_path)
    with pytest.raises(RefusedDestination, match="is not a configured asset host"):
        await fetcher.fetch_all(command([assets.add_asset("fine", b"fine"), "http://127.0.0.1:9/x"]), tmp_path)


async def test_a_file_is_checked_as_it_streams_and_one_that_fails_stops_at_once(
    fetcher: AssetFetcher, assets: HttpServers, tmp_path: Path
):
    fetcher.max_bytes = 2048 * MiB
    good = assets.add_asset("front-good.dst", good_file("dst", b"front"))
    # 1 GiB announced as a DST that is none: refused on its first chunk, not after reading a GiB.
    bad = f"{assets.base}/stream/{1024 * MiB}"
    started = time.monotonic()
    with pytest.raises(PreflightFailed, match=r"^pre-flight: 999-r-Back.dst: no Tajima header \(its LA: field"):
        await fetcher.fetch_all(command([good, bad], names=["999-r-Front.dst", "999-r-Back.dst"]), tmp_path)
    assert time.monotonic() - started < 10 and (tmp_path / "999-r-Back.dst").stat().st_size < 2 * MiB
    # Checked once, as it came: each file is asked of the host once (no second read to check it).
    (tmp_path / "again").mkdir()
    files = await fetcher.fetch_all(command([good], names=["999-r-Front.dst"]), tmp_path / "again")
    assert assets.requested.count("front-good.dst") == 2 and files[0].size == len(good_file("dst", b"front"))

"""The local-directory destination copies (or links) a delivery's files in one thread call, each still written
under a hidden temporary name and then renamed."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from service.contracts import DeliveryCommand, Integration
from service.destinations.base import Job, LocalFile
from service.destinations.local import LocalDestination
from service.netpolicy import NetPolicy
from tests.integrations import RAW_FEED, integration
from tests.security.worker_inputs import command


def job(spool: Path, names: list[str]) -> Job:
    config = integration("acme", "local", {"directory": "acme/in"}, RAW_FEED)
    files = []
    for name in names:
        path = spool / name
        if not path.exists():
            path.write_bytes(name.encode() * 100)
        files.append(LocalFile(name, "application/octet-stream", "", path, path.stat().st_size, "0" * 64))
    return Job(DeliveryCommand.model_validate(command(config)), Integration.model_validate(config), {}, files)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    (tmp_path / "spool").mkdir()
    return tmp_path / "spool"


async def test_one_thread_call_copies_every_file_of_a_delivery(tmp_path: Path, spool: Path, monkeypatch):
    calls: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        calls.append(getattr(func, "__name__", repr(func)))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    names = [f"999-r-{i}-Front.dst" for i in range(5)] + ["999-r-manifest.json"]
    destination = LocalDestination({"directory": "acme/in"}, NetPolicy(True), tmp_path / "root")
    sent = await destination.deliver(job(spool, names))
    assert len(calls) == 1
    folder = tmp_path / "root" / "acme" / "in"
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temporary name left behind
    assert sent == sum((spool / n).stat().st_size for n in names)
    for name in names:
        assert hashlib.sha256((folder / name).read_bytes()).digest() == hashlib.sha256(name.encode() * 100).digest()


async def test_a_failed_copy_leaves_no_temporary_file_and_no_partial_final_name(tmp_path: Path, spool: Path):
    destination = LocalDestination({"directory": "acme/in"}, NetPolicy(True), tmp_path / "root")
    folder = tmp_path / "root" / "acme" / "in"
    folder.mkdir(parents=True)
    (folder / "999-r-1-Back.dst").write_bytes(b"the delivery before")
    broken = job(spool, ["999-r-0-Front.dst", "999-r-1-Back.dst"])
    (spool / "999-r-1-Back.dst").unlink()  # its spool file is gone: the copy fails
    with pytest.raises(FileNotFoundError):
        await destination.deliver(broken)
    assert sorted(p.name for p in folder.iterdir()) == ["999-r-0-Front.dst", "999-r-1-Back.dst"]
    assert (folder / "999-r-1-Back.dst").read_bytes() == b"the delivery before"  # never a short file


async def test_on_the_spools_filesystem_a_file_is_linked_not_written_again(tmp_path: Path, spool: Path):
    destination = LocalDestination({"directory": "acme/in"}, NetPolicy(True), tmp_path / "root")
    await destination.deliver(job(spool, ["999-r-0-Front.dst"]))
    delivered = tmp_path / "root" / "acme" / "in" / "999-r-0-Front.dst"
    assert delivered.stat().st_ino == (spool / "999-r-0-Front.dst").stat().st_ino


async def test_across_filesystems_the_file_is_copied(tmp_path: Path, spool: Path, monkeypatch):
    def cross_device(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("service.destinations.local.os.link", cross_device)
    destination = LocalDestination({"directory": "acme/in"}, NetPolicy(True), tmp_path / "root")
    await destination.deliver(job(spool, ["999-r-0-Front.dst"]))
    delivered = tmp_path / "root" / "acme" / "in" / "999-r-0-Front.dst"
    assert delivered.read_bytes() == b"999-r-0-Front.dst" * 100
    assert delivered.stat().st_ino != (spool / "999-r-0-Front.dst").stat().st_ino

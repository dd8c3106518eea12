"""S2: a delivery command on the internal topic with a name that would leave its folder is refused where
the file would be written (local, SFTP, S3, Azure, the download spool), and nothing lands outside the
target directory, prefix or container."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from service.contracts import DeliveryCommand, Integration
from service.delivery_errors import PermanentDeliveryError
from service.destinations.azure import AzureBlobDestination
from service.destinations.base import Job, LocalFile
from service.destinations.email import EmailDestination
from service.destinations.local import LocalDestination
from service.destinations.s3 import S3Destination
from service.destinations.sftp import SftpDestination
from service.netpolicy import NetPolicy
from service.settings import Settings
from service.smtp_relay import SmtpRelay
from tests.deployments import ROOT
from tests.events import unique
from tests.integrations import RAW_FEED, azure_settings, integration, s3_settings
from tests.integrations import sftp_settings as sftp_settings_for
from tests.security.worker_inputs import command, first_results, publish_integrations, send_commands
from tests.stores import azure_blobs, make_bucket, s3_objects

pytestmark = pytest.mark.integration

ALLOW = NetPolicy(allow_private=True)


def bad_names(marker: str) -> list[str]:
    return [
        f"../{marker}-up.txt",
        f"../../{marker}-up2.txt",
        f"/tmp/{marker}-absolute.txt",
        f"{marker}-nul\x00.txt",
        f"..\\{marker}-backslash.txt",
        f"sub/{marker}-slash.txt",
        "..",
        ".",
        f"{marker}-" + "x" * 1000 + ".txt",
    ]


def job_with(name: str, source: Path, type_: str) -> Job:
    config = Integration.model_validate(integration("s2", type_, {}, RAW_FEED))
    cmd = DeliveryCommand.model_validate(command(integration("s2", type_, {}, RAW_FEED)))
    return Job(cmd, config, {}, [LocalFile(name, "text/plain", "", source, source.stat().st_size, "0" * 64)])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "spool" / "file.txt"
    path.parent.mkdir()
    path.write_bytes(b"must not land outside")
    return path


def found_anywhere(root: Path, marker: str) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files if marker in f]


async def refused_everywhere(destination, source: Path, marker: str, type_: str) -> None:
    for name in bad_names(marker):
        with pytest.raises(PermanentDeliveryError, match="refused file name"):
            await destination.deliver(job_with(name, source, type_))
    # The same destination delivers a plain name: the refusals were the names', not the setup's.
    assert await destination.deliver(job_with(f"{marker}-plain.txt", source, type_)) > 0
    await destination.close()


async def test_local_refuses_names_that_leave_its_folder(tmp_path: Path, source: Path) -> None:
    marker = unique("s2")
    root = tmp_path / "root"
    await refused_everywhere(LocalDestination({"directory": "t/in"}, ALLOW, root), source, marker, "local")
    assert [p.relative_to(tmp_path) for p in found_anywhere(tmp_path, marker)] == [
        Path("root/t/in") / f"{marker}-plain.txt"
    ]


async def test_sftp_refuses_names_that_leave_its_folder(destinations, source: Path) -> None:
    marker = unique("s2")
    settings = sftp_settings_for(destinations, f"{marker}/in")
    await refused_everywhere(SftpDestination(settings, ALLOW, 30), source, marker, "sftp")
    assert [p.relative_to(destinations.sftp.root) for p in found_anywhere(destinations.sftp.root, marker)] == [
        Path(f"{marker}/in/{marker}-plain.txt")
    ]


async def test_s3_refuses_names_that_leave_its_prefix(destinations, source: Path) -> None:
    marker, bucket = unique("s2"), f"b-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    settings = s3_settings(destinations, bucket, prefix="in")
    await refused_everywhere(S3Destination(settings, ALLOW, 30), source, marker, "s3")
    assert list(await s3_objects(destinations, bucket)) == [f"in/{marker}-plain.txt"]


async def test_azure_refuses_names_that_leave_its_prefix(destinations, source: Path) -> None:
    marker, container = unique("s2"), f"c-{uuid.uuid4().hex[:12]}"
    settings = await azure_settings(destinations, container)
    await refused_everywhere(AzureBlobDestination(settings, ALLOW), source, marker, "azure")
    assert list(await azure_blobs(destinations, container)) == [f"orders/{marker}-plain.txt"]


async def test_email_refuses_them_as_attachment_names(destinations, source: Path) -> None:
    marker = unique("s2")
    relay = SmtpRelay(Settings(smtp_port=destinations.smtp.port))
    email = EmailDestination({"to": f"{marker}@factory.example"}, ALLOW, relay, "outbound@test.example", 2**20)
    await refused_everywhere(email, source, marker, "email")
    await relay.close()
    assert len(destinations.smtp.inbox.to(f"{marker}@factory.example")) == 1


async def test_a_command_with_such_names_is_refused_before_download(deployment, worker, destinations):
    """Through the worker: the download spool is the first place a name is written, and it refuses."""
    tenant, marker = unique("s2w"), unique("m")
    local = integration(tenant, "local", {"directory": tenant}, RAW_FEED)
    await publish_integrations(deployment, [worker], [local])
    url = destinations.http.add_asset(f"{marker}.txt", b"asset")
    commands = [
        command(local, [{"kind": "production", "name": name, "mimeType": "text/plain", "url": url}])
        for name in bad_names(marker)
    ]
    await send_commands(deployment, commands)
    results = await first_results(deployment, commands)
    for sent in commands:
        result = results[sent["deliveryId"]]
        assert result["outcome"] == "failed" and result["final"] and "refused file name" in result["error"]
    assert f"{marker}.txt" not in destinations.http.requested  # refused before the download
    # The worker's work directory (deliveries) and its spool (the default one, under the checkout).
    assert found_anywhere(deployment.workdir, marker) == found_anywhere(ROOT / ".local", marker) == []

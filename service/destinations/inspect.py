"""What a destination holds under given names: size, and SHA-256 where the store keeps one.

For `outbound reconcile`. Each store is asked about the names of a delivery's manifest only, one
name at a time (S3 and Azure: the object's or blob's properties; SFTP: stat; local: stat and hash),
never with a listing: a bucket or folder shared with another application is never walked. The
adapters' own clients are used, so every connection passes the same network policy and host-key
check as a delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import posixpath
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from service.destinations.base import Destination, checked_name, target_path
from service.planning.reconcile import Found, own_temporary

HASH_BLOCK = 1024 * 1024


class NotCheckable(Exception):
    """A destination that cannot be asked what it holds (e-mail, catch hooks)."""


async def inspect(destination: Destination, names: Iterable[str]) -> dict[str, Found | None]:
    """Each name's Found, or None where the destination holds nothing under it. Raises what the store
    raises when it refuses to answer (a refused login, a missing container): the caller reports it."""
    # Imported here like the pool imports them: only the types in use are loaded.
    wanted = [checked_name(n) for n in names]
    kind = type(destination).__name__
    if kind == "LocalDestination":
        return await asyncio.to_thread(_local, destination, wanted)
    if kind == "S3Destination":
        return await _s3(destination, wanted)
    if kind == "AzureBlobDestination":
        return await _azure(destination, wanted)
    if kind == "SftpDestination":
        return await _sftp(destination, wanted)
    raise NotCheckable(kind)


def _local(destination: Destination, names: list[str]) -> dict[str, Found | None]:
    from service.destinations.local import LocalDestination

    assert isinstance(destination, LocalDestination)
    folder = destination.folder()
    found: dict[str, Found | None] = {}
    for name in names:
        path = folder / name
        found[name] = Found(path.stat().st_size, _sha256(path)) if path.is_file() else None
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


async def _s3(destination: Destination, names: list[str]) -> dict[str, Found | None]:
    from botocore.exceptions import ClientError

    from service.destinations.s3 import S3Destination

    assert isinstance(destination, S3Destination)
    client = await destination._s3()
    bucket, prefix = destination.options.bucket, destination.options.prefix
    found: dict[str, Found | None] = {}
    for name in names:
        try:
            head = await client.head_object(Bucket=bucket, Key=target_path(prefix, name))
        except ClientError as exc:
            # A HEAD answer has no body: a missing object and a missing bucket both say 404. The bucket
            # is asked about once below, so a deleted bucket is an error, not every file missing.
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                found[name] = None
                continue
            raise
        found[name] = Found(int(head["ContentLength"]), (head.get("Metadata") or {}).get("sha256"), hash_kept=True)
    if names and all(v is None for v in found.values()):
        await client.head_bucket(Bucket=bucket)  # raises for a bucket that is gone or refused
    return found


async def _azure(destination: Destination, names: list[str]) -> dict[str, Found | None]:
    from azure.core.exceptions import ResourceNotFoundError

    from service.destinations.azure import AzureBlobDestination

    assert isinstance(destination, AzureBlobDestination)
    container = await destination._container()
    prefix = destination.options.prefix
    found: dict[str, Found | None] = {}
    for name in names:
        try:
            properties = await container.get_blob_client(target_path(prefix, name)).get_blob_properties()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise
            found[name] = None
            continue
        found[name] = Found(int(properties.size), (properties.metadata or {}).get("sha256"), hash_kept=True)
    return found


async def _sftp(destination: Destination, names: list[str]) -> dict[str, Found | None]:
    import asyncssh

    from service.destinations.sftp import SftpDestination

    assert isinstance(destination, SftpDestination)
    folder = destination.options.directory.strip("/")
    found: dict[str, Found | None] = {}
    async with destination._lock:
        sftp = await destination._client()
        for name in names:
            try:
                attrs = await sftp.stat(target_path(folder, name))
            except asyncssh.SFTPNoSuchFile:
                found[name] = None
                continue
            # SFTP keeps no hash: a size is what can be compared without reading the file back.
            found[name] = Found(int(attrs.size or 0), None)
    return found


# A folder is read this far at most for leftovers: the work stays bounded in a folder of many files.
MAX_ENTRIES = 10_000


async def clean_leftovers(
    destination: Destination, names: Iterable[str], before: datetime, *, dry_run: bool
) -> list[str]:
    """Remove the service's own stale leftovers of the given names (begun before `before`): SFTP and local
    temporary files of uploads that were killed, S3 multipart uploads never completed. Their names (or
    keys) are answered; with `dry_run` they are only found. Azure drops uncommitted blocks by itself."""
    wanted = [checked_name(n) for n in names]
    kind = type(destination).__name__
    if kind == "LocalDestination":
        return await asyncio.to_thread(_local_leftovers, destination, wanted, before, dry_run)
    if kind == "SftpDestination":
        return await _sftp_leftovers(destination, wanted, before, dry_run)
    if kind == "S3Destination":
        return await _s3_leftovers(destination, wanted, before, dry_run)
    return []


def _local_leftovers(destination: Destination, names: list[str], before: datetime, dry_run: bool) -> list[str]:
    from service.destinations.local import LocalDestination

    assert isinstance(destination, LocalDestination)
    folder, cleaned = destination.folder(), []
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        for entry in itertools.islice(entries, MAX_ENTRIES):
            if own_temporary(entry.name, names) and entry.stat().st_mtime < before.timestamp():
                if not dry_run:
                    Path(entry.path).unlink(missing_ok=True)
                cleaned.append(entry.name)
    return cleaned


async def _sftp_leftovers(destination: Destination, names: list[str], before: datetime, dry_run: bool) -> list[str]:
    import asyncssh

    from service.destinations.sftp import SftpDestination

    assert isinstance(destination, SftpDestination)
    folder = destination.options.directory.strip("/") or "."
    cleaned: list[str] = []
    async with destination._lock:
        sftp = await destination._client()
        try:
            seen = 0
            async for entry in sftp.scandir(folder):
                seen += 1
                if seen > MAX_ENTRIES:
                    break
                name = str(entry.filename)
                if own_temporary(name, names) and (entry.attrs.mtime or 0) < before.timestamp():
                    if not dry_run:
                        await sftp.remove(posixpath.join(folder, name))
                    cleaned.append(name)
        except asyncssh.SFTPNoSuchFile:
            return []
    return cleaned


async def _s3_leftovers(destination: Destination, names: list[str], before: datetime, dry_run: bool) -> list[str]:
    from service.destinations.s3 import S3Destination

    assert isinstance(destination, S3Destination)
    client = await destination._s3()
    bucket, prefix = destination.options.bucket, destination.options.prefix
    cleaned = []
    for name in names:
        key = target_path(prefix, name)
        # Listed by the exact key as prefix, one page: never another application's uploads.
        listed = await client.list_multipart_uploads(Bucket=bucket, Prefix=key, MaxUploads=100)
        for upload in listed.get("Uploads") or []:
            if upload.get("Key") != key or upload["Initiated"] >= before:
                continue
            if not dry_run:
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            cleaned.append(key)
    return cleaned

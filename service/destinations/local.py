"""A folder on the worker's disk, under the configured local-delivery root."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.delivery_errors import PermanentDeliveryError
from service.destinations.base import Destination, Job, UnsafeName, checked_name
from service.destinations.options import LocalOptions
from service.netpolicy import NetPolicy


class LocalDestination(Destination[LocalOptions]):
    options_model = LocalOptions

    def __init__(self, options: Mapping[str, Any], policy: NetPolicy, root: Path) -> None:
        super().__init__(options, policy)
        self.root = root.resolve()

    def folder(self) -> Path:
        folder = (self.root / self.options.directory).resolve()
        if not folder.is_relative_to(self.root):
            raise PermanentDeliveryError("settings.directory points outside the local-delivery root")
        return folder

    async def deliver(self, job: Job) -> int:
        # One thread hop per delivery, not one per file: each hop wakes the event loop once more and
        # waits its turn for the executor's few threads behind every other delivery's hops.
        await asyncio.to_thread(self._copy_all, job)
        return job.total_bytes

    def _copy_all(self, job: Job) -> None:
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / checked_name(file.name) for file in job.files]
        for target in targets:
            if target.parent.resolve() != folder:
                raise UnsafeName(f"refused file name {target.name[:60]!r}: it leaves the folder")
        for file, target in zip(job.files, targets, strict=True):
            _atomic_copy(file.path, target)


def _atomic_copy(source: Path, target: Path) -> None:
    """Readers never see a half-written file: copy to a hidden temporary name, then rename. On the
    spool's own filesystem the copy is a hard link (the spool's name goes with the delivery), so a
    large file is not written twice."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)

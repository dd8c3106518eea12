"""What every destination shares: the job it receives, the error it raises, and its interface.

A destination only speaks its protocol. Naming, fetching, policy and retry decisions happen
before (planning, assets) and after (streams) it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.contracts import DeliveryCommand, Integration


@dataclass(frozen=True)
class LocalFile:
    """A recipe file fetched to the worker's disk, with what the manifest says of it."""

    name: str
    mime_type: str
    url: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Job:
    command: DeliveryCommand
    integration: Integration
    settings: dict[str, Any]  # decrypted: never log, never put in a result
    files: list[LocalFile]  # the recipe's files, then the manifest

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class Destination(ABC):
    """One integration's connection to its system, reused across deliveries until closed."""

    #: False for destinations that receive links, not files (no download needed).
    needs_files: bool = True

    def __init__(self, settings: dict[str, Any], allow_private: bool) -> None:
        self.settings = settings
        self.allow_private = allow_private

    @abstractmethod
    async def deliver(self, job: Job) -> int:
        """Deliver every file of the job; return the bytes sent.

        Raise a DeliveryError, or let a library error escape: `classify_failure` says what it means."""

    async def close(self) -> None:  # noqa: B027  (most destinations hold nothing to close)
        """Release connections."""


def target_path(folder: str, name: str) -> str:
    """A delivered name under an optional folder/prefix, with exactly one separator."""
    folder = folder.strip("/")
    return f"{folder}/{name}" if folder else name

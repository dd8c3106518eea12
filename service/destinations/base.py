"""What every destination shares: the job it receives, the error it raises, and its interface.

A destination only speaks its protocol. Naming, fetching, policy and retry decisions happen
before (planning, assets) and after (streams) it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from service.contracts import DeliveryCommand, Integration
from service.delivery_errors import PermanentDeliveryError
from service.destinations.options import IntegrationOptions
from service.netpolicy import NetPolicy
from service.planning.naming import is_safe_name


@dataclass(frozen=True)
class LocalFile:
    """A recipe file fetched to the worker's disk, with what the manifest says of it."""

    name: str
    mime_type: str
    url: str
    path: Path
    size: int
    sha256: str


def delivered_files(files: list[LocalFile]) -> list[dict[str, Any]]:
    """What a delivery result says of each file handed over: name, bytes and SHA-256."""
    return [{"name": f.name, "bytes": f.size, "sha256": f.sha256} for f in files]


@dataclass(frozen=True)
class Job:
    command: DeliveryCommand
    integration: Integration
    options: dict[str, Any]  # the integration's decrypted options: never log, never put in a result
    files: list[LocalFile]  # the recipe's files, then the manifest

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class TotalLimit:
    """A destination's limit on a delivery's bytes in all, and the error that says it is passed (given
    the bytes known so far: a download stops as soon as it is over)."""

    bytes: int
    exceeded: Callable[[int], Exception]


Options = TypeVar("Options", bound=IntegrationOptions)


class Destination(ABC, Generic[Options]):
    """One integration's connection to its system, reused across deliveries until closed."""

    #: False for destinations that receive links, not files (no download needed).
    needs_files: bool = True
    #: The type's options (service.destinations.options).
    options_model: type[Options]

    def __init__(self, options: Mapping[str, Any], policy: NetPolicy) -> None:
        # The integration's decrypted settings, parsed once: an adapter lives as long as its configuration.
        self.options: Options = self.options_model.model_validate(dict(options))
        self.policy = policy

    def total_limit(self) -> TotalLimit | None:
        """The most a delivery here may carry in all, if the protocol sets one (downloads stop there)."""
        return None

    @abstractmethod
    async def deliver(self, job: Job) -> int:
        """Deliver every file of the job; return the bytes sent.

        Raise a DeliveryError, or let a library error escape: `classify_failure` says what it means."""

    async def close(self) -> None:  # most destinations hold nothing to close
        """Release connections."""


class UnsafeName(PermanentDeliveryError):
    """A file name that could write outside the delivery's folder, prefix or container."""


def checked_name(name: str) -> str:
    """A delivery command's file name, refused unless it is a name the service itself would make: the
    commands' topic is internal, but a file is written only under a name checked where it is written."""
    if not is_safe_name(name):
        shown = name[:60].encode("unicode_escape").decode("ascii")
        raise UnsafeName(
            f"refused file name {shown!r}: not a plain file name (separators, '..', control characters or too long)"
        )
    return name


def target_path(folder: str, name: str) -> str:
    """A delivered name under an optional folder/prefix, with exactly one separator."""
    name = checked_name(name)
    folder = folder.strip("/")
    return f"{folder}/{name}" if folder else name

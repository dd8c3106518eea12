"""What a failed delivery attempt means for its retries, carried on the exception's type.

Like aiokafka's `retriable` flag on its errors: whoever raises knows whether trying again can
help, so nobody downstream converts errors by hand. `classify_failure` (destinations/failures.py)
maps library exceptions that were not raised as one of these onto the same two classes.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A failed delivery attempt. `retriable` says whether another attempt may succeed."""

    retriable: bool = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return not self.retriable


class TransientDeliveryError(DeliveryError):
    """Network trouble, timeouts, 5xx, 408, 429, a full disk, the broker: worth trying again."""


class PermanentDeliveryError(DeliveryError):
    """Invalid configuration, a refused address, 4xx, refused login, a wrong host key: retrying cannot help."""

    retriable = False


class ReceiverGoneError(PermanentDeliveryError):
    """The receiver says it is gone for good (HTTP 410 Gone): its integration is turned off."""

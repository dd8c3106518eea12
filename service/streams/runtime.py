"""The worker's long-lived delivery resources, created on first use inside the running loop."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from service.app import settings
from service.assets import AssetFetcher
from service.destinations.pool import DestinationPool
from service.destinations.slots import DeliverySlots
from service.secrets import SecretBox, SecretKeyError
from service.smtp_relay import SmtpRelay


@dataclass(frozen=True)
class Runtime:
    fetcher: AssetFetcher
    pool: DestinationPool
    relay: SmtpRelay
    box: SecretBox | None
    slots: DeliverySlots


@cache
def runtime() -> Runtime:
    relay = SmtpRelay(settings)
    try:
        box: SecretBox | None = SecretBox(settings.secret_keys.get_secret_value())
    except SecretKeyError:
        box = None  # integrations without secrets still work; the others fail with a clear error
    return Runtime(
        fetcher=AssetFetcher(
            allowed_hosts=settings.allowed_asset_hosts(),
            allow_private=settings.allow_private_destinations,
            max_bytes=settings.max_file_bytes,
            timeout=settings.fetch_timeout_seconds,
        ),
        pool=DestinationPool(settings, relay),
        relay=relay,
        box=box,
        slots=DeliverySlots(settings.delivery_concurrency, settings.integration_concurrency),
    )

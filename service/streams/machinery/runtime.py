"""The worker's long-lived delivery resources, created on first use inside the running loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from service.app import app, deliveries_topic, settings
from service.assets import AssetFetcher
from service.destinations.pool import DestinationPool
from service.destinations.slots import DeliverySlots
from service.netpolicy import NetPolicy, lookup_from_environment
from service.secrets import SecretBox, SecretKeyError
from service.smtp_relay import SmtpRelay
from service.streams.machinery.partitions import owned_share

log = logging.getLogger(__name__)


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
    lookup = lookup_from_environment()
    return Runtime(
        fetcher=AssetFetcher(
            allowed_hosts=settings.allowed_asset_hosts(),
            policy=NetPolicy(settings.allow_private_asset_hosts, lookup, "asset host"),
            max_bytes=settings.max_file_bytes,
            timeout=settings.fetch_timeout_seconds,
        ),
        pool=DestinationPool(settings, relay, NetPolicy(settings.allow_private_destinations, lookup)),
        relay=relay,
        box=box,
        slots=DeliverySlots(
            settings.delivery_concurrency,
            settings.integration_concurrency,
            # Co-partitioned with deliveries-retry: the owner of a partition's first attempts owns its retries.
            share=lambda: owned_share(deliveries_topic.get_topic_name()),
            margin=settings.rate_margin_seconds,
        ),
    )


@app.task
async def warn_about_open_switches() -> None:
    for warning in settings.open_switches():
        log.warning("network policy loosened: %s", warning)

"""Zapier catch hooks: the seed's JSON with links, signed the Standard Webhooks way."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from service.destinations.base import DeliveryError, Destination, Job
from service.netpolicy import RefusedDestination, check_url
from service.planning.payloads import webhook_signature, zapier_payload
from service.planning.retry_policy import is_permanent_http_status, parse_retry_after


class ZapierDestination(Destination):
    needs_files = False

    def __init__(self, settings: dict[str, Any], allow_private: bool, client: httpx.AsyncClient) -> None:
        super().__init__(settings, allow_private)
        self.client = client

    async def deliver(self, job: Job) -> int:
        url = str(self.settings["hook-url"])
        try:
            await check_url(url, allow_private=self.allow_private)
        except RefusedDestination as exc:
            raise DeliveryError(f"settings.hook-url: {exc}", permanent=True) from exc
        body = orjson.dumps(zapier_payload(job.command))
        timestamp = int(time.time())
        # The delivery id is the webhook id: unchanged across retries, so the receiver can deduplicate.
        headers = {"content-type": "application/json", "webhook-id": job.command.deliveryId}
        headers["webhook-timestamp"] = str(timestamp)
        secret = self.settings.get("signing-secret")
        if secret:
            headers["webhook-signature"] = webhook_signature(str(secret), job.command.deliveryId, timestamp, body)
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Zapier: {type(exc).__name__}") from exc
        if 200 <= response.status_code < 300:
            return len(body)
        status = response.status_code
        if status == 410:
            raise DeliveryError(
                "Zapier: the hook is gone (HTTP 410): the integration needs a new hook-url", permanent=True
            )
        raise DeliveryError(
            f"Zapier: hook answered HTTP {status}",
            permanent=is_permanent_http_status(status),
            retry_after=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        )

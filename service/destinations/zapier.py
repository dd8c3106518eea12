"""Zapier catch hooks: the seed's JSON with links, signed the Standard Webhooks way."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from service.delivery_errors import PermanentDeliveryError, TransientDeliveryError
from service.destinations.base import Destination, Job
from service.netpolicy import check_url
from service.planning.payloads import webhook_signature, zapier_payload
from service.planning.retry_policy import is_permanent_http_status, parse_retry_after


class ZapierDestination(Destination):
    needs_files = False

    def __init__(self, settings: dict[str, Any], allow_private: bool, client: httpx.AsyncClient) -> None:
        super().__init__(settings, allow_private)
        self.client = client

    async def deliver(self, job: Job) -> int:
        url = str(self.settings["hook-url"])
        await check_url(url, allow_private=self.allow_private)
        body = orjson.dumps(zapier_payload(job.command))
        timestamp = int(time.time())
        # The delivery id is the webhook id: unchanged across retries, so the receiver can deduplicate.
        headers = {"content-type": "application/json", "webhook-id": job.command.deliveryId}
        headers["webhook-timestamp"] = str(timestamp)
        secret = self.settings.get("signing-secret")
        if secret:
            headers["webhook-signature"] = webhook_signature(str(secret), job.command.deliveryId, timestamp, body)
        response = await self.client.post(url, content=body, headers=headers)
        if 200 <= response.status_code < 300:
            return len(body)
        status = response.status_code
        if status == 410:
            raise PermanentDeliveryError("Zapier: the hook is gone (HTTP 410): the integration needs a new hook-url")
        error = PermanentDeliveryError if is_permanent_http_status(status) else TransientDeliveryError
        raise error(
            f"Zapier: hook answered HTTP {status}",
            retry_after=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        )

"""Zapier catch hooks: the seed's JSON with links, signed the Standard Webhooks way."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from service.delivery_errors import PermanentDeliveryError, ReceiverGoneError, TransientDeliveryError
from service.destinations.base import Destination, Job
from service.destinations.options import ZapierOptions
from service.netpolicy import NetPolicy, RefusedDestination, check_url
from service.planning.payloads import webhook_signature, zapier_payload
from service.planning.retry_policy import is_permanent_http_status, parse_retry_after
from service.secrets import redact_url

# A catch hook's answer is read up to this much, never whole: only its status matters.
MAX_ANSWER_BYTES = 64 * 1024


class ZapierDestination(Destination[ZapierOptions]):
    needs_files = False
    options_model = ZapierOptions

    def __init__(
        self, options: Mapping[str, Any], policy: NetPolicy, client: aiohttp.ClientSession, *, allow_http: bool
    ) -> None:
        super().__init__(options, policy)
        self.client = client
        self.allow_http = allow_http

    async def deliver(self, job: Job) -> int:
        url = self.options.hook_url
        # Checked here too: the URL is encrypted on the topic, where validation cannot read it.
        if url.startswith("http://") and not self.allow_http:
            raise RefusedDestination(f"Zapier: {redact_url(url)} is plain http; hooks must be https")
        await check_url(url, self.policy)
        body = orjson.dumps(zapier_payload(job.command))
        timestamp = int(time.time())
        # The delivery id is the webhook id: unchanged across retries, so the receiver can deduplicate.
        headers = {"content-type": "application/json", "webhook-id": job.command.deliveryId}
        headers["webhook-timestamp"] = str(timestamp)
        secret = self.options.signing_secret
        if secret:
            headers["webhook-signature"] = webhook_signature(secret, job.command.deliveryId, timestamp, body)
        # Redirects are not followed: a redirect's target was never checked, and 307/308 resend the body.
        async with self.client.post(url, data=body, headers=headers, allow_redirects=False) as response:
            await read_capped(response, MAX_ANSWER_BYTES)
        status = response.status
        if 200 <= status < 300:
            return len(body)
        if 300 <= status < 400:
            raise RefusedDestination(f"Zapier: the hook answered a redirect (HTTP {status}), which is not followed")
        if status == 410:
            raise ReceiverGoneError("Zapier: the hook is gone (HTTP 410): the integration needs a new hook-url")
        error = PermanentDeliveryError if is_permanent_http_status(status) else TransientDeliveryError
        raise error(
            f"Zapier: hook answered HTTP {status}",
            retry_after=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        )


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of an answer; the rest is never read (aiohttp closes a connection whose
    answer was not read to its end instead of reusing it)."""
    kept = bytearray()
    async for chunk in response.content.iter_any():
        kept += chunk[: limit - len(kept)]
        if len(kept) >= limit:
            break
    return bytes(kept)

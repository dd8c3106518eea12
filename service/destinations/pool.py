"""The worker's destinations: one adapter per integration configuration, kept open and reused."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from service.contracts import Integration
from service.destinations.base import Destination
from service.netclients import policy_aiohttp_session
from service.netpolicy import NetPolicy
from service.settings import Settings
from service.smtp_relay import SmtpRelay


class DestinationPool:
    def __init__(self, settings: Settings, relay: SmtpRelay, policy: NetPolicy) -> None:
        self.settings = settings
        self.relay = relay
        self.policy = policy
        self._http: aiohttp.ClientSession | None = None
        self._open: dict[str, tuple[str, Destination[Any]]] = {}

    @property
    def http(self) -> aiohttp.ClientSession:
        """The catch hooks' one session, made on first use (an aiohttp session belongs to the loop it
        was made in). aiohttp rather than httpx: a POST costs about a fifth of the CPU, and POSTs were
        a third of a busy worker's time."""
        if self._http is None:
            timeout = self.settings.destination_timeout_seconds
            self._http = policy_aiohttp_session(
                self.policy,
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=10.0, sock_read=timeout),
                every_call_refuses_redirects=True,
                limit=100,
            )
        return self._http

    async def get(self, integration: Integration, options: Mapping[str, Any]) -> Destination[Any]:
        """The open adapter for this integration, given its decrypted options; a changed configuration
        gets a fresh one."""
        fingerprint = hashlib.sha256(orjson.dumps(dict(options), option=orjson.OPT_SORT_KEYS)).hexdigest()
        current = self._open.get(integration.id)
        if current is not None and current[0] == fingerprint:
            return current[1]
        if current is not None:
            await current[1].close()
        destination = self._create(integration, options)
        self._open[integration.id] = (fingerprint, destination)
        return destination

    def _create(self, integration: Integration, options: Mapping[str, Any]) -> Destination[Any]:
        # Each adapter's client library is imported when an integration of its type is first used:
        # together they were a third of a worker's start (Azure's and SFTP's alone most of it).
        s, policy = self.settings, self.policy
        match integration.type:
            case "local":
                from service.destinations.local import LocalDestination

                return LocalDestination(options, policy, s.local_delivery_root)
            case "email":
                from service.destinations.email import EmailDestination

                return EmailDestination(options, policy, self.relay, s.smtp_from, s.max_email_bytes)
            case "sftp":
                from service.destinations.sftp import SftpDestination

                return SftpDestination(options, policy, s.destination_timeout_seconds)
            case "s3":
                from service.destinations.s3 import S3Destination

                return S3Destination(options, policy, s.destination_timeout_seconds)
            case "azure":
                from service.destinations.azure import AzureBlobDestination

                return AzureBlobDestination(options, policy)
            case "zapier":
                from service.destinations.zapier import ZapierDestination

                return ZapierDestination(options, policy, self.http, allow_http=s.allow_http_hooks)

    async def close(self) -> None:
        for _, destination in self._open.values():
            await destination.close()
        self._open.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

"""How many delivery attempts run at once: per integration first, then for the whole worker.

The integration's own limit is taken before a worker-wide slot, so deliveries that wait on one
tenant's slow destination wait without holding a slot every other tenant needs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DeliverySlots:
    def __init__(self, total: int, per_integration: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_integration: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_integration)
        )

    @asynccontextmanager
    async def hold(self, integration_id: str) -> AsyncIterator[None]:
        async with self._per_integration[integration_id], self._total:
            yield

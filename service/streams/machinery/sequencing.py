"""Turns: work with the same key runs one at a time, in the order it was registered.

Deliveries of one order to one integration all write the same names (or post to the same hook),
so `order.created` overtaking `order.cancelled` would leave the cancelled order's files last.
Registration happens synchronously in the agent loop, in offset order; the work itself waits for
the turn of everything registered before it under its key. Different keys never wait on each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Turn:
    """A place in one key's line: wait for the one before, then release the one after."""

    _before: asyncio.Future[None] | None
    _mine: asyncio.Future[None]
    _line: Sequencer
    _key: Hashable

    async def wait(self) -> None:
        if self._before is not None and not self._before.done():
            await asyncio.shield(self._before)

    def release(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)
        if self._line._tails.get(self._key) is self._mine:
            del self._line._tails[self._key]


@dataclass
class Sequencer:
    _tails: dict[Hashable, asyncio.Future[None]] = field(default_factory=dict)

    def register(self, key: Hashable) -> Turn:
        """Take the next place in `key`'s line. Call in arrival order; release the turn when done,
        whatever happened (a cancelled holder releases too, or its line would wait forever)."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = Turn(self._tails.get(key), mine, self, key)
        self._tails[key] = mine
        return turn

    def lines(self) -> int:
        return len(self._tails)

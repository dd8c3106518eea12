"""What the health answers are decided from: pure functions over what the worker has noticed.

Liveness fails only for what a restart cures: an agent crash-looping, a view task dead, the event
loop blocked. Readiness also waits for what passes by itself (recovery, a rebalance, the broker
coming back), so a broker outage takes workers out of the Service without restarting them.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

# An agent that crashed this often within the window is looping, not recovering.
CRASH_LIMIT = 3
CRASH_WINDOW_SECONDS = 300.0
# A block this recent still fails liveness: probes that came during the block timed out, the next
# ones must not pretend all is well.
BLOCK_WINDOW_SECONDS = 60.0
# The broker counts as unreachable once no metadata answer came for this long.
BROKER_SILENCE_SECONDS = 10.0


@dataclass
class Noticed:
    """What the running worker has seen (monotonic clock)."""

    started: float = field(default_factory=time.monotonic)
    crashes: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=50)))
    blocks: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=100))
    broker_answered: float | None = None
    broker_error: str | None = None
    # A table's changelog record the broker did not take: the worker commits nothing from then on.
    lost_table_write: str | None = None


noticed = Noticed()


def agent_crashed(name: str, now: float | None = None) -> None:
    noticed.crashes[name].append(time.monotonic() if now is None else now)


def loop_blocked(seconds: float, now: float | None = None) -> None:
    noticed.blocks.append((time.monotonic() if now is None else now, seconds))


def crash_looping(crashes: dict[str, deque[float]], now: float) -> list[str]:
    return sorted(
        name for name, times in crashes.items() if sum(now - t <= CRASH_WINDOW_SECONDS for t in times) >= CRASH_LIMIT
    )


def longest_block(blocks: deque[tuple[float, float]], now: float) -> float:
    return max((seconds for at, seconds in blocks if now - at <= BLOCK_WINDOW_SECONDS), default=0.0)


@dataclass(frozen=True)
class ViewState:
    name: str
    caught_up: bool
    failure: str | None  # why its task ended; None while it runs


def liveness_problems(
    state: Noticed, views: list[ViewState], now: float, *, block_threshold: float, loop_stalled_for: float
) -> list[str]:
    """Empty when live. `loop_stalled_for`: seconds since the loop's heartbeat last ticked (the probe
    itself runs on the loop, so this only shows a heartbeat task that died)."""
    problems = [f"agent {name} is crash-looping" for name in crash_looping(state.crashes, now)]
    problems += [f"the {v.name} view stopped: {v.failure}" for v in views if v.failure is not None]
    if state.lost_table_write is not None:
        problems.append(
            f"a table write never reached the broker ({state.lost_table_write}): nothing is committed past it "
            "and a restart redoes it from the committed offsets"
        )
    block = max(longest_block(state.blocks, now), loop_stalled_for)
    if block > block_threshold:
        problems.append(f"the event loop was blocked for {block:.1f}s (limit {block_threshold:g}s)")
    return problems


def broker_reachable(state: Noticed, now: float) -> bool:
    since = state.broker_answered if state.broker_answered is not None else state.started
    return state.broker_answered is not None and now - since <= BROKER_SILENCE_SECONDS


def readiness_problems(
    state: Noticed, views: list[ViewState], now: float, *, in_recovery: bool, rebalancing: bool
) -> list[str]:
    """Empty when ready: what keeps the worker out of the Service, in words."""
    busy = []
    if in_recovery:
        busy.append("recovering")
    if rebalancing:
        busy.append("rebalancing")
    for view in views:
        if view.failure is not None:
            busy.append(f"the {view.name} view stopped")
        elif not view.caught_up:
            busy.append(f"loading the {view.name}")
    if not broker_reachable(state, now):
        busy.append("broker unreachable" + (f" ({state.broker_error})" if state.broker_error else ""))
    return busy

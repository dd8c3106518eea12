"""/health/live and /health/ready (no token: probes carry none), and the watchers they read.

Decisions are in service/health.py; here are the watchers: a heartbeat that measures how long the
event loop was blocked (and a thread that logs where it is stuck while it is), and a broker check
that asks for metadata every few seconds with a client of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback

from aiokafka.client import AIOKafkaClient
from faust import web

from service import metrics
from service.app import app, settings
from service.health import ViewState, liveness_problems, loop_blocked, noticed, readiness_problems
from service.kafka_admin import client_options
from service.streams.state.live_views import integrations_view, order_numbers_view

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.25
BROKER_CHECK_SECONDS = 2.0
_last_tick = time.monotonic()


def view_states() -> list[ViewState]:
    return [ViewState(v.name, v.caught_up, v.failure) for v in (integrations_view, order_numbers_view)]


def stalled_for() -> float:
    """Seconds since the heartbeat last ran: more than a beat means it died or the loop is stuck."""
    return max(0.0, time.monotonic() - _last_tick - 4 * HEARTBEAT_SECONDS)


def live_problems() -> list[str]:
    now = time.monotonic()
    return liveness_problems(
        noticed,
        view_states(),
        now,
        block_threshold=settings.liveness_loop_block_seconds,
        loop_stalled_for=stalled_for(),
    )


def ready_problems() -> list[str]:
    return readiness_problems(
        noticed,
        view_states(),
        time.monotonic(),
        in_recovery=bool(app.in_recovery),
        rebalancing=bool(app.rebalancing),
    )


@app.page("/health/live")
class Liveness(web.View):
    """200 unless the worker is wedged in a way only a restart cures."""

    async def get(self, request: web.Request) -> web.Response:
        problems = live_problems()
        return self.json({"live": not problems, "problems": problems}, status=503 if problems else 200)


@app.page("/health/ready")
class Readiness(web.View):
    """200 once tables are recovered, no rebalance runs, the views are loaded and the broker answers."""

    async def get(self, request: web.Request) -> web.Response:
        busy = ready_problems()
        metrics.ready.set(0 if busy else 1)
        return self.json({"ready": not busy, "busy": busy}, status=503 if busy else 200)


@app.task
async def heartbeat() -> None:
    """Measures each beat's lateness: a late beat is the time the loop was blocked."""
    global _last_tick
    loop = asyncio.get_running_loop()
    # Faust starts tasks (and the web server) once the first recovery is done: the clock starts here.
    _last_tick = time.monotonic()
    threading.Thread(target=_watch_the_loop, args=(threading.main_thread().ident,), daemon=True).start()
    while True:
        before = loop.time()
        await asyncio.sleep(HEARTBEAT_SECONDS)
        late = loop.time() - before - HEARTBEAT_SECONDS
        _last_tick = time.monotonic()
        if late > 1.0:
            loop_blocked(late)
            log.warning("the event loop was blocked", extra={"seconds": round(late, 2)})


def _watch_the_loop(loop_thread: int | None) -> None:
    """Off the loop: when it has not ticked for the configured limit, log where it is stuck (once
    per block). Only file, line and function names: no values."""
    reported = 0.0
    while True:
        time.sleep(1.0)
        silent = time.monotonic() - _last_tick
        if silent > settings.liveness_loop_block_seconds and reported != _last_tick:
            reported = _last_tick
            frame = sys._current_frames().get(loop_thread or 0)
            where = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)][-8:] if frame else []
            log.error("the event loop is blocked", extra={"seconds": round(silent, 1), "stack": where})


@app.task
async def watch_broker() -> None:
    """Readiness needs the broker: a metadata answer at least every BROKER_SILENCE_SECONDS."""
    client: AIOKafkaClient | None = None
    while True:
        try:
            if client is None:
                client = AIOKafkaClient(**client_options(settings), request_timeout_ms=5000)
                await asyncio.wait_for(client.bootstrap(), 6.0)
            await asyncio.wait_for(client.fetch_all_metadata(), 6.0)
            if noticed.broker_error is not None:
                log.info("the broker answers again")
            noticed.broker_answered, noticed.broker_error = time.monotonic(), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure to get an answer is the broker being unreachable
            if noticed.broker_error is None:
                log.warning("the broker does not answer", extra={"error": type(exc).__name__})
            noticed.broker_error = type(exc).__name__
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
                client = None
        await asyncio.sleep(BROKER_CHECK_SECONDS)

"""After a rebalance the stream partitions are sought to their committed offsets before anything of them
is fetched (service/faust_fixes.py). Faust's own order is pinned too: when a release fixes it, the
override can go. The reliability suite's hard-kill test (R1) is the end-to-end evidence: without the
override it lost orders in most runs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

from service.app import app
from service.faust_fixes import SeekFirstRecovery

STREAM = TP("orders", 0)
CHANGELOG = TP("app-orders-changelog", 0)


class Steps:
    """What the recovery did, in order; a concurrent task adds "tick" whenever the loop ran other work
    (a fetch of resumed partitions could happen at any tick)."""

    def __init__(self) -> None:
        self.done: list[str] = []

    async def ticking(self) -> None:
        while True:
            self.done.append("tick")
            await asyncio.sleep(0)

    def between(self, first: str, then: str) -> list[str]:
        return self.done[self.done.index(first) + 1 : self.done.index(then)]


def harness(base: type[Recovery], steps: Steps) -> Any:
    async def perform_seek() -> None:
        steps.done.append("seek started")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        steps.done.append("seek done")

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    consumer = SimpleNamespace(
        assignment=lambda: {STREAM, CHANGELOG},
        perform_seek=perform_seek,
        resume_partitions=lambda tps: steps.done.append("streams resumed" if STREAM in tps else "changelogs resumed"),
        resume_flow=lambda: steps.done.append("consumer flow resumed"),
    )
    fake_app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=7,
        conf=SimpleNamespace(broker_request_timeout=5.0),
        on_rebalance_complete=SimpleNamespace(send=nothing),
        flow_control=SimpleNamespace(resume=lambda: steps.done.append("flow resumed")),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        on_rebalance_end=lambda: None,
    )

    class Harness(base):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:  # the service machinery is not needed to run one method
            self.app = fake_app
            self.tables = SimpleNamespace(on_actives_ready=lambda: None, on_standbys_ready=lambda: None)
            self.completed = asyncio.Event()

        @property
        def log(self) -> Any:
            return SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, dev=lambda *a: None)

        async def _wait(self, coro: Any, timeout: float | None = None) -> Any:
            return await coro

        def _is_changelog_tp(self, tp: Any) -> bool:
            return tp == CHANGELOG

    return Harness()


async def resume(base: type[Recovery]) -> Steps:
    steps = Steps()
    ticking = asyncio.create_task(steps.ticking())
    try:
        await harness(base, steps)._resume_streams(generation_id=7)
    finally:
        ticking.cancel()
    return steps


async def test_streams_resume_only_after_the_seek_and_together_with_the_flow():
    steps = await resume(SeekFirstRecovery)
    assert steps.done.index("seek done") < steps.done.index("streams resumed")
    assert "tick" not in steps.between("streams resumed", "flow resumed")


async def test_faust_itself_resumes_the_streams_before_seeking():
    """The order the override exists for (faust-streaming 0.15.3): if this fails, faust changed and the
    override in service/faust_fixes.py can be dropped."""
    steps = await resume(Recovery)
    assert steps.done.index("streams resumed") < steps.done.index("seek done")
    assert "tick" in steps.between("streams resumed", "flow resumed")


def test_the_worker_uses_the_seek_first_recovery():
    assert isinstance(app.tables.recovery, SeekFirstRecovery)

"""Reconciliation jobs of the operator API as a client follows them: started, then polled to their end."""

from __future__ import annotations

from typing import Any

import httpx

from tests.waiting import wait_for


def api(port: int, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def start_job(port: int, token: str, body: dict[str, Any]) -> dict[str, Any]:
    async with api(port, token) as client:
        r = await client.post("/v1/reconciliations", json=body)
    assert r.status_code == 202, r.text
    started = r.json()
    assert r.headers["Location"] == started["poll"] == f"/v1/reconciliations/{started['jobId']}"
    return started


async def job_end(port: int, token: str, poll: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job's answer once it is no longer running (every answer on the way a 200)."""

    async def ended() -> dict[str, Any] | None:
        async with api(port, token) as client:
            r = await client.get(poll)
        assert r.status_code == 200, r.text
        body = r.json()
        return None if body["state"] == "running" else body

    return await wait_for(ended, timeout, f"the job at {poll} to end", every=0.2)

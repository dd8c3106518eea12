"""Resolved addresses are kept for their TTL and shared by the policies, and every use of a kept answer
is still judged by the policy asking; against real local listeners where a connection is made."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from service.netclients import policy_aiohttp_session
from service.netpolicy import (
    DEFAULT_TTL_SECONDS,
    CachedLookup,
    NetPolicy,
    RefusedDestination,
    ScriptedLookup,
    UnresolvedHost,
    check_url,
    lookup_from_environment,
    system_lookup,
)
from tests.security.loopback import PUBLIC, Recorder
from tests.servers import HttpServers, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def recorder() -> AsyncIterator[Recorder]:
    running = await Recorder(free_port()).start()
    yield running
    await running.stop()


def fresh_connections(policy: NetPolicy) -> aiohttp.ClientSession:
    return policy_aiohttp_session(policy, force_close=True)  # so that every request is a new connection


async def test_within_its_ttl_an_answer_is_reused_for_every_check_and_connection(assets: HttpServers):
    clock = Clock()
    # The second answer is a loopback address nothing listens on: a connection to it is refused.
    scripted = ScriptedLookup({"assets.test": [["127.0.0.1"], ["127.0.0.2"]]}, ttl=30)
    lookup = CachedLookup(scripted, clock=clock)
    policy = NetPolicy(True, lookup, "asset host")
    url = assets.add_asset("cached.bin", b"kept").replace("127.0.0.1", "assets.test")
    async with fresh_connections(policy) as session:
        for _ in range(3):
            await check_url(url, policy)
            async with session.get(url) as answer:
                assert await answer.read() == b"kept"
        assert scripted.asked["assets.test"] == 1
        clock.now += 29.9
        async with session.get(url) as answer:
            await answer.read()
        assert scripted.asked["assets.test"] == 1
        clock.now += 0.2  # past the TTL: asked again, and the new answer is the one connected to
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)
        assert scripted.asked["assets.test"] == 2


async def test_a_kept_answer_is_judged_again_by_each_policy(recorder: Recorder):
    """One cache for both policies (as the worker has): the asset policy may reach a private host, the
    destinations' policy asking the same name is refused by the same kept answer, before connecting."""
    scripted = ScriptedLookup({"internal.test": [["127.0.0.1"]]}, ttl=30)
    lookup = CachedLookup(scripted)
    asset_hosts = NetPolicy(True, lookup, "asset host")
    destinations = NetPolicy(False, lookup)
    assert await asset_hosts.addresses("internal.test", recorder.port) == ["127.0.0.1"]
    url = f"http://internal.test:{recorder.port}/hook"
    with pytest.raises(RefusedDestination, match=r"'internal.test' resolves to 127\.0\.0\.1"):
        await check_url(url, destinations)
    async with fresh_connections(destinations) as session:
        for _ in range(2):
            with pytest.raises(RefusedDestination, match="not a public address"):
                await session.post(url, data=b"x")
    async with policy_aiohttp_session(destinations) as session:
        with pytest.raises(RefusedDestination, match="not a public address"):
            await session.get(url)
    assert scripted.asked["internal.test"] == 1  # every refusal above judged the kept answer
    assert recorder.connections == []


async def test_a_rebinding_name_is_not_kept_and_its_second_answer_is_refused(recorder: Recorder):
    """Scripted answers are kept for no time, as a rebinding name's (TTL 0): the connection asks again."""
    scripted = ScriptedLookup({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    policy = NetPolicy(False, CachedLookup(scripted))
    await check_url(f"http://rebind.test:{recorder.port}/", policy)
    async with policy_aiohttp_session(policy) as session:
        with pytest.raises(RefusedDestination, match=r"resolves to 127\.0\.0\.1"):
            await session.get(f"http://rebind.test:{recorder.port}/")
    assert scripted.asked["rebind.test"] == 2 and recorder.connections == []


async def test_the_system_resolver_has_no_ttl_so_its_answers_are_kept_briefly():
    clock, asked = Clock(), []

    async def counting(host: str, port: int) -> list[str]:
        asked.append(host)
        return await system_lookup(host, port)

    lookup = CachedLookup(counting, clock=clock)
    first = await lookup("localhost", 80)
    assert await lookup("LOCALHOST", 80) == first and len(asked) == 1
    clock.now += DEFAULT_TTL_SECONDS
    await lookup("localhost", 80)
    assert len(asked) == 2
    assert isinstance(lookup_from_environment(), CachedLookup)


async def test_one_question_at_a_time_per_name_and_failures_are_not_kept():
    started, release, asked = asyncio.Event(), asyncio.Event(), []

    async def slow(host: str, port: int) -> list[str]:
        asked.append(host)
        started.set()
        await release.wait()
        if len(asked) == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return ["93.184.215.14"]

    lookup = CachedLookup(slow)
    policy = NetPolicy(False, lookup)
    waiting = [asyncio.create_task(policy.addresses("cdn.test", 443)) for _ in range(4)]
    await asyncio.wait_for(started.wait(), 5)
    waiting[0].cancel()  # one caller giving up does not fail the others' question
    release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert all(isinstance(o, UnresolvedHost) and "Temporary failure" in str(o) for o in outcomes[1:])
    assert asked == ["cdn.test"]
    assert await policy.addresses("cdn.test", 443) == ["93.184.215.14"]  # the failure was not kept
    assert await policy.addresses("cdn.test", 443) == ["93.184.215.14"] and len(asked) == 2


async def test_the_cache_holds_a_bounded_number_of_names():
    lookup = CachedLookup(ScriptedLookup({f"h{i}.test": [[PUBLIC]] for i in range(5)}, ttl=60), max_names=3)
    for i in range(5):
        await lookup(f"h{i}.test", 443)
    assert [host for host, _ in lookup.answers] == ["h2.test", "h3.test", "h4.test"]


async def test_aiohttp_keeps_an_answer_no_longer_than_the_policys_lookup(assets: HttpServers):
    """S3 and Azure connect through aiohttp, whose own cache would keep any answer 10 s: a name kept
    for no time is asked again for the next connection, and that answer is the one used."""
    scripted = ScriptedLookup({"blobs.test": [["127.0.0.1"], ["127.0.0.2"]]})
    url = assets.add_asset("blob.bin", b"blob").replace("127.0.0.1", "blobs.test")
    async with policy_aiohttp_session(NetPolicy(True, CachedLookup(scripted)), force_close=True) as session:
        async with session.get(url) as response:
            assert await response.read() == b"blob"
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)
    assert scripted.asked["blobs.test"] == 2

"""Scenario 1: ``kill -9`` of a random engine worker every ~2 s while messages flow.

Three ``aspri engine`` processes consume ``whatsapp:messages``; every ~2 s one of them, chosen at
random, gets SIGKILL and a new one (a new consumer name, as a restarted process has) takes its
place. Each message is a slash command, so each is answered by a reply of its own: the checker
then sees every message exactly once, in each chat's order.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.chaos.checker import check, figures, latencies_ms, recovery_ms
from tests.chaos.cluster import LONG, Cluster, Load, cluster

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 420)]

WORKERS = 3
KILL_EVERY_S = 2.0


async def kill_every(c: Cluster, period: float, kills: list[int], stop: asyncio.Event) -> None:
    """The fault schedule: a SIGKILL every ``period`` seconds, then a replacement worker.

    A replacement takes seconds to boot (langchain's imports alone cost ~10 s of CPU on the test
    machine), so a kill waits until all three workers consume again: killing faster than they
    boot would spend both cores on boots and measure those, not recovery."""
    rng = random.Random()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            killed = await c.kill_random_engine(rng, keep=WORKERS - 1)
            if killed is not None:
                kills.append(killed)
                await c.engine()


async def test_random_engine_worker_killed_every_two_seconds(tmp_path: Path) -> None:
    chats, per_chat = (100, 100) if LONG else (100, 10)
    async with cluster(tmp_path) as c:
        await c.gateways()
        await c.engines_up(WORKERS)
        load = Load(c, chats, per_chat)
        kills: list[int] = []
        stop = asyncio.Event()
        killer = asyncio.create_task(kill_every(c, KILL_EVERY_S, kills, stop))
        try:
            await load.run()
            observed = await c.settle(load, within=1500 if LONG else 150)
        finally:
            stop.set()
            await killer
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    figures(
        "engine kills",
        messages=len(load.accepted),
        chats=chats,
        kills=len(kills),
        verdict=verdict.summary(),
        latency=latencies_ms(load.accepted, observed),
        recovery=recovery_ms(kills, load.accepted, observed),
    )
    assert verdict.valid, verdict
    assert not verdict.failed
    assert len(load.accepted) == chats * per_chat
    assert kills, "no worker was killed: the scenario did not run"

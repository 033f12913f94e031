"""Scenario 6: the MCP server killed in the middle of tool calls.

Every reply leaves through the MCP tool ``whatsapp_send_message``, so under load a worker's
``aspri mcp`` child always has calls in flight. It gets SIGKILL every ~2 s; the worker restarts
it and the turn is retried with the same idempotency keys: each message answered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.chaos.checker import check, figures, latencies_ms, recovery_ms
from tests.chaos.cluster import LONG, Cluster, Load, children, cluster, now_ms
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 420)]


async def kill_mcp_every(c: Cluster, period: float, kills: list[int], stop: asyncio.Event) -> None:
    (engine,) = c.engines
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
            return
        mcp = children(engine.pid, "aspri.cli mcp")
        if mcp:  # none while the worker is restarting it
            os.kill(mcp[0], signal.SIGKILL)
            kills.append(now_ms())


async def test_mcp_server_killed_mid_tool_call(tmp_path: Path) -> None:
    chats, per_chat = (100, 100) if LONG else (20, 10)
    async with cluster(tmp_path) as c:
        await c.gateways()
        await c.engines_up(1)
        (engine,) = c.engines
        first = children(engine.pid, "aspri.cli mcp")
        load = Load(c, chats, per_chat)
        kills: list[int] = []
        stop = asyncio.Event()
        killer = asyncio.create_task(kill_mcp_every(c, 2.0, kills, stop))
        try:
            await load.run(concurrency=8)
            await wait_until(lambda: len(kills) >= 3 or killer.done(), 120, interval=0.2)
        finally:
            stop.set()
            await killer
        observed = await c.settle(load, within=1500 if LONG else 200)
        now = children(engine.pid, "aspri.cli mcp")
        assert engine.alive, engine.log_tail()
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    figures(
        "mcp kills",
        messages=len(load.accepted),
        kills=len(kills),
        verdict=verdict.summary(),
        latency=latencies_ms(load.accepted, observed),
        recovery=recovery_ms(kills, load.accepted, observed),
    )
    assert verdict.valid, verdict
    assert not verdict.failed
    assert len(now) == 1 and now != first, "the worker did not restart its MCP server"
    assert len(kills) >= 3

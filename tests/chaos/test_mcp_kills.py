"""Scenario 6: the MCP server killed in the middle of tool calls.

The scripted model (``tests/chaos/model.py``, behind the real OpenAI client) calls a tool in
every turn before it answers, so under load a worker's ``aspri mcp`` child always has calls in
flight. It gets SIGKILL every ~2 s; the worker starts a new one, and a turn whose call was cut
runs again with the same idempotency keys: each message answered once.
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
from tests.chaos.model import scripted_llm
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
    async with (
        scripted_llm() as (model, base_url),
        cluster(tmp_path, OPENAI_BASE_URL=base_url) as c,
    ):
        model.tool = "cronjob_list"  # read-only, through the MCP server to the cron gateway
        await c.gateways()
        await c.engines_up(1)
        (engine,) = c.engines
        first = children(engine.pid, "aspri.cli mcp")
        load = Load(c, chats, per_chat, text="what is planned? {token}")
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
        # the last kill may be a moment ago: its successor is starting
        now = await wait_until(lambda: children(engine.pid, "aspri.cli mcp"), 30, interval=0.2)
        assert engine.alive, engine.log_tail()
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    figures(
        "mcp kills",
        messages=len(load.accepted),
        kills=len(kills),
        tool_results=model.tool_results,
        verdict=verdict.summary(),
        latency=latencies_ms(load.accepted, observed),
        recovery=recovery_ms(kills, load.accepted, observed),
    )
    assert verdict.valid, verdict
    assert not verdict.failed
    assert len(now) == 1 and now != first, "the worker did not restart its MCP server"
    assert len(kills) >= 3
    assert model.tool_results >= chats  # every chat's turns went through the tool

"""Scenario 5: the model gets 10x slower, then goes down for a while, then comes back.

Free text goes through the real ``langchain-openai`` client to a scripted OpenAI-compatible
server. While the model is down every turn fails and is retried with backoff (the retry window,
``RETRY_BACKOFF_SECONDS`` x (1 + 2 + ... ), is set longer than the outage); nothing is lost,
nothing is answered twice, the workers' memory stays flat, and the backlog drains once the
model answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.chaos.checker import check, figures, latencies_ms
from tests.chaos.cluster import LONG, Cluster, Load, cluster, rss_mb
from tests.chaos.model import scripted_llm
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 480)]

NORMAL_S, SLOW_S = 0.1, 1.0
OUTAGE_S = 30 if LONG else 10


async def sample_rss(c: Cluster, peaks: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for s in c.services:
            if s.alive:
                peaks[s.name] = max(peaks.get(s.name, 0.0), rss_mb(s.pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def test_llm_slow_then_down_then_back(tmp_path: Path) -> None:
    chats, per_phase = (100, 30) if LONG else (20, 3)
    async with (
        scripted_llm() as (model, base_url),
        cluster(
            tmp_path,
            OPENAI_BASE_URL=base_url,
            MAX_DELIVERIES="8",
            RETRY_BACKOFF_SECONDS="0.5",  # retries span 0.5 x (1 + 2 + ... + 64) = 63.5 s
        ) as c,
    ):
        await c.gateways()
        await c.engines_up(1)
        start_rss = {s.name: rss_mb(s.pid) for s in c.services}
        load = Load(c, chats, 3 * per_phase, text="hello {token}")
        peaks: dict[str, float] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(c, peaks, stop))
        try:
            model.delay_s = NORMAL_S
            await load.run(concurrency=8, seqs=range(0, per_phase))
            model.delay_s = SLOW_S
            await load.run(concurrency=8, seqs=range(per_phase, 2 * per_phase))
            model.down = True
            down_at = time.monotonic()
            await load.run(concurrency=8, seqs=range(2 * per_phase, 3 * per_phase))
            await wait_until(lambda: time.monotonic() - down_at >= OUTAGE_S, OUTAGE_S + 5)
            refused = model.refused
            model.down, model.delay_s = False, NORMAL_S
            back_at = time.monotonic()
            observed = await c.settle(load, within=1500 if LONG else 240)
            drained_s = time.monotonic() - back_at
        finally:
            stop.set()
            await sampler
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    growth = {n: round(peaks.get(n, 0.0) - start_rss[n]) for n in start_rss}
    figures(
        "llm slow then down",
        messages=len(load.accepted),
        outage_s=OUTAGE_S,
        refused_calls=refused,
        drained_after_return_s=round(drained_s, 1),
        rss_growth_mb=growth,
        verdict=verdict.summary(),
        latency=latencies_ms(load.accepted, observed),
    )
    assert verdict.valid, verdict
    assert not verdict.failed, "a message got the apology: the outage outlasted the retries"
    assert refused > 0, "the model was never asked while it was down"
    assert max(growth.values()) < 150, growth

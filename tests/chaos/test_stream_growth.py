"""Scenario 7: stream growth. The engine workers trim what every group acknowledged
(``aspri.streams.trim``): ``whatsapp:messages`` stays bounded over a run far longer than the
kept window, no pending entry is trimmed (nothing is lost), and ``chat:*`` keeps every message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aspri.streams import keys
from tests.chaos.checker import check, figures, latencies_ms
from tests.chaos.cluster import LONG, Cluster, Load, cluster
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 420)]

KEEP = 50


async def sample_length(c: Cluster, lengths: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        lengths.append(int(await c.redis.xlen(keys.WHATSAPP_MESSAGES)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def test_work_queue_stays_bounded_and_chats_keep_everything(tmp_path: Path) -> None:
    chats, per_chat = (100, 100) if LONG else (30, 10)
    async with cluster(tmp_path, STREAM_TRIM_KEEP=str(KEEP)) as c:
        await c.gateways()
        await c.engines_up(1)
        load = Load(c, chats, per_chat)
        lengths: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_length(c, lengths, stop))
        try:
            # in waves, each drained and trimmed before the next: the stream must stay bounded
            # whatever the machine's speed (a fast one sends a single wave within one trim period)
            step = per_chat // 2
            for first in range(0, per_chat, step):
                await load.run(concurrency=8, seqs=range(first, min(first + step, per_chat)))
                await wait_until(_trimmed_to(c, KEEP), 1500 if LONG else 200, interval=0.5)
            observed = await c.settle(load, within=1500 if LONG else 200)
            await wait_until(_trimmed_to(c, KEEP), 30, interval=0.5)  # one trim period
            final = int(await c.redis.xlen(keys.WHATSAPP_MESSAGES))
        finally:
            stop.set()
            await sampler
        chat_lengths = [int(await c.redis.xlen(keys.chat(chat))) for chat in load.chat_ids]
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    figures(
        "stream growth",
        messages=len(load.accepted),
        kept=KEEP,
        max_length=max(lengths),
        final_length=final,
        verdict=verdict.summary(),
        latency=latencies_ms(load.accepted, observed),
    )
    assert verdict.valid, verdict
    assert len(load.accepted) == chats * per_chat
    assert max(lengths) < len(load.accepted), "never trimmed during the run"
    # chat:* untouched: every message in, every reply and every turn record still there
    assert {a.event_id for a in load.accepted} <= observed.inbound_ms.keys()
    assert sum(chat_lengths) >= 3 * len(load.accepted)


def _trimmed_to(c: Cluster, keep: int) -> Callable[[], Awaitable[bool]]:
    async def trimmed() -> bool:
        return int(await c.redis.xlen(keys.WHATSAPP_MESSAGES)) <= keep

    return trimmed

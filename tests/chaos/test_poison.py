"""Scenario 4: one poison message among normal traffic.

The poison (a message the model fails on every time) is retried ``MAX_DELIVERIES`` times, then
answered once with the apology and moved to ``whatsapp:messages:dlq``. Everyone else is answered
as before: the same paced traffic runs without and with a poison, alternately, and the others'
p99 latency may grow by at most 10 % (long form; see the bound's comment for the quick one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aspri.schemas.envelope import text
from aspri.streams import keys
from tests.chaos.checker import Observed, check, figures, latencies_ms, percentile
from tests.chaos.cluster import LONG, Cluster, Load, cluster
from tests.chaos.model import POISON, scripted_llm

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 480)]

MAX_DELIVERIES = 3


ROUNDS = 2
"""Without and with the poison, alternately, so the machine's drift hits both alike."""


async def round_of(c: Cluster, chats: int, per_chat: int, *, poison: bool) -> tuple[Load, Load]:
    """Paced traffic (each person writes about once a second, so latency is the work, not a
    queue); with ``poison``, one more person sends the poison first."""
    load = Load(c, chats, per_chat, text="hello {token}")
    bad = Load(c, 1, 1 if poison else 0, text=POISON + " {token}")
    await bad.run()
    await load.run(concurrency=chats, pace_s=1.0)
    return load, bad


async def test_poison_goes_to_the_dlq_and_the_others_do_not_notice(tmp_path: Path) -> None:
    chats, per_chat = (20, 50) if LONG else (8, 8)
    async with (
        scripted_llm() as (_model, base_url),
        cluster(
            tmp_path,
            OPENAI_BASE_URL=base_url,
            MAX_DELIVERIES=str(MAX_DELIVERIES),
            RETRY_BACKOFF_SECONDS="0.5",
        ) as c,
    ):
        await c.gateways()
        await c.engines_up(1)
        rounds: dict[bool, list[tuple[Load, Observed]]] = {False: [], True: []}
        for poison in [False, True] * ROUNDS:
            load, bad = await round_of(c, chats, per_chat, poison=poison)
            rounds[poison].append((load, await c.settle(load, within=600 if LONG else 120)))
            if poison:
                rounds[poison].append((bad, await c.settle(bad, within=120)))
        dead = [
            text(fields[b"eventId"])
            for _, fields in await c.redis.xrange(keys.dlq(keys.WHATSAPP_MESSAGES))
        ]
    verdicts = {p: [check(load.accepted, seen) for load, seen in rs] for p, rs in rounds.items()}
    latency = {
        p: [
            ms
            for load, seen in rs
            if POISON not in load.text
            for ms in latencies_ms(load.accepted, seen)
        ]
        for p, rs in rounds.items()
    }
    poisons = [a.event_id for load, _ in rounds[True] if POISON in load.text for a in load.accepted]
    failed = sorted(e for v in verdicts[True] for e in v.failed)
    figures(
        "poison",
        messages=sum(len(load.accepted) for rs in rounds.values() for load, _ in rs),
        poison_messages=len(poisons),
        verdict=" / ".join(v.summary() for vs in verdicts.values() for v in vs),
        dead_letters=len(dead),
        latency_without=latency[False],
        latency_with=latency[True],
    )
    assert all(v.valid for vs in verdicts.values() for v in vs), verdicts
    assert failed == sorted(poisons)  # each poison answered once, with the apology
    assert sorted(dead) == sorted(poisons)  # and dead-lettered once
    without, with_ = percentile(latency[False], 99), percentile(latency[True], 99)
    # The goal is 10 %. A quick run has ~130 latencies a side on a shared 2-core machine, where
    # p99 is one sample's luck (204 vs 339 ms in one CI run); its bound only catches a poison
    # that holds the others up, which costs them its retries' backoff (0.1 + 0.2 + ... s).
    assert with_ <= (1.10 * without + 10 if LONG else 2 * without + 100), (without, with_)

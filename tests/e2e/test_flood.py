"""A flood from one number does not starve anyone else (real processes, real Valkey).

``aspri whatsapp`` and ``aspri engine`` (with its ``aspri mcp``) run as processes; a third
process sends 1,000 messages from one number as fast as it can over 8 connections. Meanwhile
other people send ``/help`` and wait for the reply; their reply latency, p50 and p99, is
compared with the same measure taken just before, without the flood. The flood itself is
recorded in full; only what the sender's rate limit allows reaches the engine, and the sender
gets exactly one "slow down" notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.whatsapp.gateway import SLOW_DOWN
from aspri.schemas import WhatsAppMessage
from aspri.schemas.chat import ChatTurn
from aspri.streams import EventLog, keys
from aspri.streams.server import free_port
from tests.helpers import API_KEY, AUTH, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
"""About 25 s on an idle 2-core machine; starting the engine alone took a minute under load."""

FLOOD = 1000
SAMPLES = 25
FLOODER, WARM = "6285500000001", "6285500000002"


def someone(n: int) -> str:
    """Another person: each sample is a different one, as each is within their own limit."""
    return f"62856{n:08d}"


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def reply_after(
    redis: Redis, http: httpx.AsyncClient, number: str, within: float = 30
) -> float:
    """Seconds from sending ``/help`` as ``number`` until the reply is in its chat."""
    stream = keys.chat(f"{number}@c.us")
    last = await EventLog(redis).last_id(stream)
    began = time.perf_counter()
    sent = await http.post("/api/local/messages", json={"from": number, "text": "/help"})
    assert sent.status_code == 202 and not sent.json()["data"]["throttled"], sent.text
    deadline = began + within
    while time.perf_counter() < deadline:
        got: Any = await redis.xread({stream: last}, block=1000)
        for _, entries in got or []:
            for entry_id, fields in entries:
                last = entry_id
                if (
                    fields.get(b"type") == b"whatsapp:message"
                    and b'"fromMe":true' in fields[b"data"]
                ):
                    return time.perf_counter() - began
    raise AssertionError(f"no reply to {number} within {within} s")


def p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)
    )


async def test_one_number_flooding_keeps_others_within_twice_their_latency(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ASPRI_DATA_DIR": str(tmp_path / "data"),
        "WHATSAPP_PORT": str(port),
        "WHATSAPP_URL": base,
        "CRONJOB_URL": f"http://127.0.0.1:{free_port()}",
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "CONSUMER_NAME": "flood-test",
        "ASPRI_API_KEY": API_KEY,
        "LOG_LEVEL": "warning",
        "INBOUND_RATE_PER_MINUTE": "20",
        "INBOUND_BURST": "10",
    }
    gateway = process(["-m", "aspri.cli", "whatsapp"], env, tmp_path / "whatsapp.log")
    engine = process(["-m", "aspri.cli", "engine"], env, tmp_path / "engine.log")
    with gateway, engine:
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as http:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get("/health")).status_code == 200
                return False

            await wait_until(up, 120, interval=0.1)  # a loaded machine starts slowly
            await reply_after(redis, http, WARM, within=120)  # the engine and its MCP are up
            for _ in range(4):  # warm up: connections, caches
                await reply_after(redis, http, WARM)
            unloaded = [await reply_after(redis, http, someone(n)) for n in range(SAMPLES)]

            flooder = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "tests.e2e.flooder", base, FLOODER, str(FLOOD), "8"],
                env={**os.environ, "ASPRI_API_KEY": API_KEY},
                stdout=subprocess.PIPE,
            )
            flooded: list[float] = []
            while flooder.returncode is None or len(flooded) < SAMPLES // 2:
                flooded.append(await reply_after(redis, http, someone(SAMPLES + len(flooded))))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flooder.wait(), 0.001)
            summary = (await flooder.communicate())[0].decode().strip()
            assert flooder.returncode == 0, summary

            async def accepted_answered() -> bool:
                chat = await EventLog(redis).read(keys.chat(f"{FLOODER}@c.us"))
                answered = {
                    a for e in chat if isinstance(e.data, ChatTurn) for a in e.data.answered
                }
                accepted = {
                    e.event_id
                    for e in chat
                    if isinstance(e.data, WhatsAppMessage)
                    and not (e.data.from_me or e.data.throttled)
                }
                return bool(accepted) and accepted <= answered

            await wait_until(accepted_answered, 30, interval=0.2)

    figures = {
        "unloaded p50 ms": statistics.median(unloaded) * 1000,
        "unloaded p99 ms": p(unloaded, 99) * 1000,
        "flooded p50 ms": statistics.median(flooded) * 1000,
        "flooded p99 ms": p(flooded, 99) * 1000,
    }
    print(f"\n{summary}; samples {len(unloaded)} / {len(flooded)}; "
          + ", ".join(f"{k} {v:.0f}" for k, v in figures.items()))  # fmt: skip
    # 5 ms of slack: at a quiet box's ~8 ms a turn, one scheduler tick is most of the ratio.
    assert figures["flooded p50 ms"] <= 2 * figures["unloaded p50 ms"] + 5, figures

    chat = await EventLog(redis).read(keys.chat(f"{FLOODER}@c.us"))
    inbound = [e for e in chat if isinstance(e.data, WhatsAppMessage) and not e.data.from_me]
    assert len(inbound) == FLOOD  # every message recorded
    accepted = [e for e in inbound if not e.data.throttled]
    seconds = float(summary.split("seconds=")[1].split()[0])
    assert 10 <= len(accepted) <= 10 + math.ceil(seconds * 20 / 60) + 1  # burst + the rate
    notices = [e for e in chat if isinstance(e.data, WhatsAppMessage) and e.data.from_me]
    assert len([n for n in notices if n.data.body == SLOW_DOWN.format(rate="20")]) == 1
    answered = {a for e in chat if isinstance(e.data, ChatTurn) for a in e.data.answered}
    assert {e.event_id for e in accepted} <= answered  # what was accepted was answered
    assert not answered & {e.event_id for e in inbound if e.data.throttled}

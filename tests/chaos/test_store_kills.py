"""Scenario 2: ``kill -9`` of the embedded Valkey under ``aspri up``, in the middle of the load.

The guarantee measured: Valkey runs with AOF and ``appendfsync everysec``. It write()s each
command to the AOF before answering it, so once the gateway has its 202 the entry is in the
kernel's page cache: a killed *process* loses none of it, and ``aspri up`` restarts Valkey on
the same port and directory, which replays the AOF. What is not measured here, and not
promised: an *OS* crash or power loss drops what the kernel had not fsynced yet, up to about
one second of acknowledged writes (two when an fsync stalls).

Requests made while the store is down get 503 and count as "unknown outcome" (the person would
retry): the checker accepts them answered or not, but never twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from aspri.streams.server import free_port
from tests.chaos.checker import check, figures, latencies_ms, recovery_ms
from tests.chaos.cluster import LONG, START_TIMEOUT, Cluster, Load, now_ms
from tests.e2e.test_up import valkey_of
from tests.helpers import API_KEY, AUTH, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 420)]

KILLS = 2


async def healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(f"{url}/health", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def test_valkey_killed_under_up_mid_load(tmp_path: Path) -> None:
    chats, per_chat = (100, 100) if LONG else (20, 10)
    port = free_port()
    env = {
        **os.environ,
        "ASPRI_DATA_DIR": str(tmp_path / "data"),
        "WHATSAPP_PORT": str(port),
        "CRONJOB_PORT": str(free_port()),
        "MCP_PORT": str(free_port()),
        "ASPRI_API_KEY": API_KEY,
        "ASPRI_NO_BROWSER": "1",
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": "not-needed",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "CLAIM_IDLE_MS": "1000",
        "INBOUND_RATE_PER_MINUTE": "1000000",  # as in cluster(): throttling is not measured here
        "INBOUND_BURST": "1000000",
        "RETRY_BACKOFF_SECONDS": "0.1",
        "LOG_LEVEL": "warning",
    }
    env.pop("REDIS_URL", None)
    log_path = tmp_path / "up.log"
    with log_path.open("ab") as err:
        up = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aspri.cli", "up", env=env, stdout=err, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    try:
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
            await wait_until(lambda: healthy(http, url), START_TIMEOUT * 2, interval=0.2)
            _, store_port = valkey_of(data)
            redis = Redis.from_url(
                f"redis://127.0.0.1:{store_port}/0",
                retry=Retry(ExponentialBackoff(cap=1.0), 20),
                retry_on_error=[RedisConnectionError, ConnectionRefusedError],
            )
            c = Cluster(tmp_path, "", redis, http, env, whatsapp_port=port)
            load = Load(c, chats, per_chat)
            kills: list[int] = []
            outages: list[float] = []
            sending = asyncio.create_task(load.run(concurrency=8))
            total = chats * per_chat
            for k in range(KILLS):
                goal = total * (k + 1) // (KILLS + 1)
                await wait_until(lambda g=goal: len(load.accepted) >= g, 300, interval=0.05)
                pid, _ = valkey_of(data)
                os.kill(pid, signal.SIGKILL)
                kills.append(now_ms())
                killed = time.monotonic()
                await wait_until(lambda p=pid: not Path(f"/proc/{p}").exists(), 10)
                await wait_until(lambda: healthy(http, url), 60, interval=0.05)
                outages.append((time.monotonic() - killed) * 1000)
                await wait_until(lambda p=pid: valkey_of(data)[0] != p, 30)  # up.json updated
            await sending
            observed = await c.settle(load, within=1500 if LONG else 240)
            await redis.aclose()
    finally:
        up.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(up.wait(), 60)
        except TimeoutError:
            up.kill()
            await up.wait()
    if up.returncode != 0:
        print(log_path.read_text()[-4000:])
    verdict = check(load.accepted, observed, observed.event_ids_of(load.indeterminate))
    figures(
        "valkey kills under aspri up",
        messages=len(load.accepted),
        unknown_outcome=len(load.indeterminate),
        kills=len(kills),
        verdict=verdict.summary(),
        gateway_back=outages,
        latency=latencies_ms(load.accepted, observed),
        recovery=recovery_ms(kills, load.accepted, observed),
    )
    assert verdict.valid, (verdict, log_path.read_text()[-4000:])
    assert not verdict.failed
    assert len(kills) == KILLS
    assert up.returncode == 0, log_path.read_text()[-4000:]

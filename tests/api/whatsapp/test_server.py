"""``aspri whatsapp`` as a process: engine selection, serving, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.whatsapp.app import make_channel
from aspri.api.whatsapp.engines.cloud import CloudChannel
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.config import Settings
from aspri.streams import keys
from aspri.streams.log import EventLog
from aspri.streams.server import free_port
from tests.helpers import API_KEY, AUTH, wait_until


def test_engine_is_chosen_by_setting() -> None:
    assert isinstance(make_channel(Settings()), LocalChannel)
    cloud = Settings(
        whatsapp_engine="cloud",
        whatsapp_cloud_verify_token="v",
        whatsapp_cloud_app_secret="s",
        whatsapp_cloud_access_token="t",
        whatsapp_cloud_phone_number_id="1",
    )
    assert isinstance(make_channel(cloud), CloudChannel)
    browser = make_channel(Settings(whatsapp_engine="browser"))
    assert type(browser).__name__ == "BrowserChannel" and browser.state() != "working"


async def run_cli(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aspri.cli",
        "whatsapp",
        env=os.environ | {"ASPRI_API_KEY": API_KEY} | env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.slow
async def test_cli_serves_and_stops_cleanly(redis_url: str, tmp_path: Path, redis: Redis) -> None:
    port = free_port()
    proc = await run_cli(
        {"REDIS_URL": redis_url, "WHATSAPP_PORT": str(port), "ASPRI_DATA_DIR": str(tmp_path)}
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/health")).json()["data"]["status"] == "ok"
                except httpx.TransportError:
                    return False

            await wait_until(healthy, 90, interval=0.05)
            said = await client.post(
                "/api/local/messages", json={"from": "15551234567", "text": "hi"}
            )
            assert said.status_code == 202
            # Keep a live stream open: the stop must not wait for it.
            async with client.stream("GET", "/api/local/events") as live:
                assert live.status_code == 200
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert len(await EventLog(redis).read(keys.WHATSAPP_MESSAGES)) == 1


async def test_cli_refuses_an_incomplete_cloud_configuration(
    redis_url: str, tmp_path: Path
) -> None:
    proc = await run_cli(
        {
            "REDIS_URL": redis_url,
            "WHATSAPP_PORT": str(free_port()),
            "WHATSAPP_ENGINE": "cloud",
            "ASPRI_DATA_DIR": str(tmp_path),
        }
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"WHATSAPP_CLOUD_VERIFY_TOKEN" in stderr

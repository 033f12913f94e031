"""The original ASPRI v2's ``.env`` works unchanged: every variable keeps its meaning there.

``original/env.example`` is the original's file, byte for byte (see ``original/SOURCE.md``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from aspri.config import ConfigError, Settings, read_env_file
from aspri.streams import keys
from aspri.streams.server import EmbeddedServer, free_port
from tests.api.cronjob.test_server import health, spawn, stop
from tests.helpers import API_KEY, AUTH, wait_until

ORIGINAL = Path(__file__).parent / "original" / "env.example"


def test_the_original_env_file_loads_unchanged() -> None:
    s = Settings.from_env(read_env_file(ORIGINAL))
    assert s.redis_url == "redis://localhost:6379/0"  # REDIS_HOST/PORT: no embedded server
    assert (s.whatsapp_port, s.cronjob_port) == (3001, 3002)
    assert (s.whatsapp_stream, s.cronjob_stream) == ("whatsapp:messages", "cronjob:events")
    assert s.llm_provider == "ollama"  # "ollama  # ollama | openai | anthropic"
    assert s.model_name == "qwen2.5:latest" and s.ollama_base_url == "http://localhost:11434"
    assert s.llm_temperature == 0.7
    assert (s.session_history_limit, s.session_timeout_minutes) == (50, 60)
    assert s.log_level == "INFO"
    assert s.openai_api_key is None and s.anthropic_api_key is None  # "KEY=" is unset


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o"), ("anthropic", "claude-3-7-sonnet-20250219")],
)
def test_each_provider_takes_its_own_model_variable(provider: str, model: str) -> None:
    env = read_env_file(ORIGINAL) | {"LLM_PROVIDER": provider}
    assert Settings.from_env(env).model_name == model
    assert Settings.from_env(env | {"LLM_MODEL": "pinned"}).model_name == "pinned"


def test_redis_host_port_password_make_the_url_and_redis_url_wins() -> None:
    env = {"REDIS_HOST": "cache.lan", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss:w/rd"}
    assert Settings.from_env(env).redis_url == "redis://:p%40ss%3Aw%2Frd@cache.lan:6380/0"
    assert Settings.from_env({"REDIS_PORT": "7000"}).redis_url == "redis://localhost:7000/0"
    assert Settings.from_env({"REDIS_PASSWORD": "x"}).redis_url is None  # no server named
    both = env | {"REDIS_URL": "redis://other:1/2"}
    assert Settings.from_env(both).redis_url == "redis://other:1/2"


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("LLM_TEMPERATURE", "hot", "could not convert"),
        ("LLM_TEMPERATURE", "3", "0 to 2"),
        ("REDIS_PORT", "99999", "0 to 65535"),
        ("WHATSAPP_STREAM_NAME", "chat:x", "stream name"),
    ],
)
def test_a_bad_original_value_names_the_variable(name: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value) and hint in str(info.value)


@pytest.mark.slow
async def test_processes_read_a_dotenv_in_the_original_form(tmp_path: Path) -> None:
    """``aspri cron`` and ``aspri scheduler`` started next to a ``.env`` that names the server
    the original's way use that server (no embedded one) and write triggers to the stream
    ``CRONJOB_STREAM_NAME`` names."""
    server = EmbeddedServer(tmp_path / "external")
    server.start()
    redis = Redis.from_url(server.url)
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(
        "# Redis Configuration\n"
        f"REDIS_HOST=127.0.0.1\nREDIS_PORT={server.url.rsplit(':', 1)[1].split('/')[0]}\n"
        "REDIS_PASSWORD=\n"
        f"CRONJOB_PORT={port}\nCRONJOB_STREAM_NAME=legacy:cron  # the original's variable\n"
        f"ASPRI_API_KEY={API_KEY}\nASPRI_DATA_DIR={tmp_path / 'data'}\nCONSUMER_NAME=s-1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CRONJOB_"))}
    url = f"http://127.0.0.1:{port}"
    processes = [
        await spawn("cron", env, tmp_path / "cron.log", cwd=work),
        await spawn("scheduler", env, tmp_path / "scheduler.log", cwd=work),
    ]
    try:
        await wait_until(lambda: health(url), timeout=90)
        await wait_until(lambda: redis.get(keys.CRON_LEASE), timeout=90)
        run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        body = {"name": "soon", "runAt": run_at, "payload": {"message": "hi"}}
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            assert (await client.post("/api/jobs", json=body)).status_code == 201
        await wait_until(lambda: redis.xlen("legacy:cron"), timeout=20)
        assert await redis.xlen(keys.CRON_EVENTS) == 0
        assert not (tmp_path / "data" / "valkey").exists()
    finally:
        codes = [await stop(p) for p in processes]
        await redis.aclose()
        server.stop()
    assert codes == [0, 0], (tmp_path / "cron.log").read_text()[-2000:]


@pytest.mark.parametrize("provider", ["ollama", "openai", "anthropic"])
def test_the_temperature_reaches_every_provider_s_model(provider: str) -> None:
    from aspri.agents.llm import build_model

    env = read_env_file(ORIGINAL) | {"LLM_PROVIDER": provider}
    assert getattr(build_model(Settings.from_env(env)), "temperature", None) == 0.7
    assert getattr(build_model(Settings(llm_provider=provider)), "temperature", None) is None

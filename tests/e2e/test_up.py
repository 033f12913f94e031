"""`aspri up` as a user runs it: one command, the whole assistant, data kept across restarts.

Runs the real command as a subprocess on free ports with its own data directory (embedded
Valkey, both gateways, the scheduler, one engine worker with its MCP server). No model is
reachable here (OLLAMA_BASE_URL points at a closed port), which is exactly when slash commands
must still work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aspri.streams.server import free_port

pytestmark = pytest.mark.slow

PHONE = "15550001111"


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aspri.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def replies(base: str) -> list[dict[str, object]]:
    page = httpx.get(f"{base}/api/messages/{PHONE}", timeout=5).json()["data"]
    return [m for m in page["messages"] if m["fromMe"]]


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("aspri up did not stop on SIGINT:\n" + err.decode()[-3000:]) from None
    return err.decode()


def test_up_answers_help_stops_on_sigint_and_keeps_history(tmp_path: Path) -> None:
    wa_port, cron_port = free_port(), free_port()
    env = {
        **os.environ,
        "ASPRI_DATA_DIR": str(tmp_path / "data"),
        "WHATSAPP_PORT": str(wa_port),
        "CRONJOB_PORT": str(cron_port),
        "MCP_PORT": str(free_port()),
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "ASPRI_NO_BROWSER": "1",
        "CONSUMER_NAME": "up-test",
    }
    env.pop("REDIS_URL", None)
    base = f"http://127.0.0.1:{wa_port}"

    proc = start(env)
    try:
        wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200)
        sent = httpx.post(
            f"{base}/api/local/messages", json={"from": PHONE, "name": "Ann", "text": "/help"}
        )
        assert sent.status_code == 202, sent.text
        first = wait_for(lambda: replies(base))
        assert "/remind" in str(first[0]["body"])  # the help text lists the commands
    finally:
        log = stop(proc)
    assert proc.returncode == 0, log[-3000:]
    assert "no Ollama answers" in log  # the banner says what to do about the model

    proc = start(env)
    try:
        wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200)
        again = replies(base)
        assert [m["body"] for m in again] == [m["body"] for m in first]
        page = httpx.get(f"{base}/api/messages/{PHONE}").json()["data"]["messages"]
        assert any(m["body"] == "/help" and not m["fromMe"] for m in page)
        assert len(replies(base)) == 1  # the restarted engine did not answer /help again
    finally:
        stop(proc)

"""`aspri up` as a user runs it: one command, the whole assistant, data kept across restarts.

Runs the real command as a subprocess on free ports with its own data directory (embedded
Valkey, both gateways, the scheduler, one engine worker with its MCP server). No model is
reachable here (OLLAMA_BASE_URL points at a closed port), which is exactly when slash commands
must still work. No ``ASPRI_API_KEY`` is given: the key file `aspri up` creates protects the APIs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aspri.streams.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]  # several starts on a busy box

PHONE = "15550001111"


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``aspri up`` in its own session, as a terminal runs it (Ctrl-C reaches its group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "aspri.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,
    )


def wait_for(check, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


def auth_of(tmp_path: Path) -> dict[str, str]:
    """The key ``aspri up`` created in its data directory, as request headers."""
    return {"X-API-Key": (tmp_path / "data" / "api-key").read_text().strip()}


def replies(base: str, auth: dict[str, str]) -> list[dict[str, object]]:
    page = httpx.get(f"{base}/api/messages/{PHONE}", headers=auth, timeout=5).json()["data"]
    return [m for m in page["messages"] if m["fromMe"]]


def ctrl_c(proc: subprocess.Popen[bytes], log: Path) -> str:
    """Send SIGINT to the whole process group, as Ctrl-C at a terminal does; the log."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(
            "aspri up did not stop on SIGINT:\n" + log.read_text()[-3000:]
        ) from None
    return log.read_text()


def up_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ASPRI_DATA_DIR": str(tmp_path / "data"),
        "WHATSAPP_PORT": str(free_port()),
        "CRONJOB_PORT": str(free_port()),
        "MCP_PORT": str(free_port()),
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "ASPRI_NO_BROWSER": "1",
        "CONSUMER_NAME": "up-test",
        "LOG_FORMAT": "text",  # the assertions read log lines
        **extra,
    }
    env.pop("REDIS_URL", None)
    env.pop("ASPRI_API_KEY", None)
    return env


def send_help(base: str, auth: dict[str, str]) -> None:
    sent = httpx.post(
        f"{base}/api/local/messages",
        json={"from": PHONE, "name": "Ann", "text": "/help"},
        headers=auth,
    )
    assert sent.status_code == 202, sent.text


def test_up_answers_help_stops_on_sigint_and_keeps_history(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    base = f"http://127.0.0.1:{env['WHATSAPP_PORT']}"
    log_path = tmp_path / "up.log"

    proc = start(env, log_path)
    try:
        wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200)
        assert (tmp_path / "data" / "api-key").stat().st_mode & 0o777 == 0o600
        auth = auth_of(tmp_path)
        refused = httpx.post(f"{base}/api/local/messages", json={"from": PHONE, "text": "hi"})
        assert refused.status_code == 401, refused.text
        send_help(base, auth)
        first = wait_for(lambda: replies(base, auth))  # the engine's MCP server has the key
        assert "/remind" in str(first[0]["body"])  # the help text lists the commands
        # the banner comes once every part is healthy, which may be after the first answer
        wait_for(lambda: "ASPRI is up." in log_path.read_text(), timeout=120)
        # The web chat's header learns from the engine's health record that the model is away.
        state = httpx.get(f"{base}/api/local/assistant", headers=auth).json()["data"]
        assert state["model"]["state"] == "offline", state
        assert "no Ollama answers" in state["model"]["problem"] and state["model"]["since"]
        assert state["people"] == [
            {"chatId": f"{PHONE}@c.us", "kind": "owner", "pairingUntil": None}
        ]
    finally:
        log = ctrl_c(proc, log_path)
    assert proc.returncode == 0, log[-3000:]
    assert "no Ollama answers" in log  # the banner says what to do about the model
    link = re.search(r"http://127\.0\.0\.1:\d+/chat/login\?token=\S+", log)
    assert link is not None, log[-3000:]  # the banner prints a one-time sign-in link
    assert auth["X-API-Key"] not in log  # but never the key itself

    proc = start(env, log_path)
    try:
        wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200)
        again = replies(base, auth)  # the same key: it lives in the data directory
        assert [m["body"] for m in again] == [m["body"] for m in first]
        page = httpx.get(f"{base}/api/messages/{PHONE}", headers=auth).json()["data"]
        assert any(m["body"] == "/help" and not m["fromMe"] for m in page["messages"])
        assert len(replies(base, auth)) == 1  # the restarted engine did not answer /help again
        with httpx.Client() as browser:  # the printed link signs a browser in, once
            assert browser.get(f"{base}/chat").status_code == 401
            assert browser.get(link.group(0), follow_redirects=True).status_code == 200
            assert browser.get(f"{base}/api/chats").status_code == 200
        assert httpx.get(link.group(0)).status_code == 401
    finally:
        ctrl_c(proc, log_path)


def valkey_of(data_dir: Path) -> tuple[int, int]:
    """(pid, port) of the Valkey that `aspri up` runs now, from the state file it keeps."""
    state = json.loads((data_dir / "up.json").read_text())
    return state["children"]["valkey"], int(state["redisUrl"].rsplit(":", 1)[1].split("/")[0])


def test_valkey_killed_under_up_comes_back_and_ctrl_c_stops_it_last(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    base = f"http://127.0.0.1:{env['WHATSAPP_PORT']}"
    cron = f"http://127.0.0.1:{env['CRONJOB_PORT']}"
    log_path = tmp_path / "up.log"
    proc = start(env, log_path)
    try:
        wait_for(lambda: "ASPRI is up." in log_path.read_text(), timeout=120)
        assert os.getpgid(valkey_of(tmp_path / "data")[0]) != proc.pid  # own group
        auth = auth_of(tmp_path)
        send_help(base, auth)
        wait_for(lambda: replies(base, auth))
        pid, port = valkey_of(tmp_path / "data")

        # A long outage: the supervisor is paused while Valkey is dead, so it cannot restart it.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            os.kill(pid, signal.SIGKILL)
            down = wait_for(lambda: (r := httpx.get(f"{base}/health")).status_code == 503 and r)
            assert down.headers["Retry-After"] == "1"
            assert down.json()["data"]["details"]["down"] == ["eventLog"]
            chats = httpx.get(f"{base}/api/chats", headers=auth)
            assert chats.status_code == 503 and chats.headers["Retry-After"] == "1"
            assert chats.json()["error"]["code"] == "unavailable"
            assert httpx.get(f"{cron}/health").status_code == 503
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, timeout=30)
        pid, port = valkey_of(tmp_path / "data")

        # The ordinary case: killed and restarted at once; how long until the gateway answers.
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)  # reaped by `up`
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, timeout=30)
        recovery = time.monotonic() - killed
        print(f"valkey kill -9 -> first 200 from /health: {recovery:.3f} s")

        wait_for(lambda: valkey_of(tmp_path / "data")[0] != pid, timeout=10)
        new_pid, new_port = valkey_of(tmp_path / "data")
        assert new_pid != pid and new_port == port
        assert len(replies(base, auth)) == 1  # the data came back with it (AOF)
        wait_for(lambda: httpx.get(f"{cron}/health").status_code == 200, timeout=30)
        send_help(base, auth)
        wait_for(lambda: len(replies(base, auth)) == 2, timeout=60)
        stopping_at = len(log_path.read_text())
    finally:
        log = ctrl_c(proc, log_path)
    assert proc.returncode == 0, log[-3000:]
    assert not (tmp_path / "data" / "up.json").exists()
    stopping = log[stopping_at:]
    order = [
        line.split()[2]
        for line in stopping.splitlines()
        if line.split()[3:5] == ["service", "stopped"]
    ]
    assert sorted(order[:2]) == ["engine", "scheduler"], stopping[-3000:]
    assert sorted(order[2:4]) == ["cron", "whatsapp"] and order[4:] == ["valkey"], order
    for noise in ("unreachable", "ConnectionError", "Connection refused", "Traceback"):
        assert noise not in stopping, stopping[-3000:]


def test_a_taken_port_stops_up_at_once_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = up_env(tmp_path, CRONJOB_PORT=str(port))
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "aspri.cli", "up"], env=env, capture_output=True, timeout=60
        )
    took = time.monotonic() - began
    err = done.stderr.decode()
    assert done.returncode != 0, err
    assert f"port {port} (CRONJOB_PORT) is already in use" in err
    assert "ASPRI is up" not in err and "service started" not in err
    assert not (tmp_path / "data" / "valkey").exists()  # nothing was started
    assert took < 20, took  # 1.6 s at load 10; it used to retry forever and print the banner
    print(f"taken port -> exit {done.returncode} in {took:.1f} s")


def test_a_service_that_cannot_start_is_reported_and_ends_up(tmp_path: Path) -> None:
    """The cloud channel without its tokens cannot start (a configuration error, which no
    restart fixes): `aspri up` says so with the gateway's own last lines, stops everything and
    exits 1. (Repeated quick failures of other kinds: tests/test_supervisor.py.)"""
    log_path = tmp_path / "up.log"
    proc = start(up_env(tmp_path, WHATSAPP_ENGINE="cloud"), log_path)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.returncode is None:
            ctrl_c(proc, log_path)
    log = log_path.read_text()
    assert proc.returncode == 1, log[-3000:]
    assert "giving up on it (exit code 2, a configuration error)" in log
    assert "WHATSAPP_CLOUD" in log.split("giving up", 1)[1]  # its last lines name the setting
    assert "whatsapp keeps failing" in log and "ASPRI is up" not in log
    assert "valkey service stopped" in log

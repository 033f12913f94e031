"""REDIS_URL with a password or an ACL user: a real Valkey that requires them, real services.

The server's default user has a password (``requirepass``) and ``aspri`` is an ACL user. A
gateway with the right ``redis://aspri:<password>@...`` serves; a wrong password stops the
service at once with exit status 2 and a message naming REDIS_URL, without the password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as StoreConnectionError

from aspri.streams.connect import StoreRefused, open_redis, redacted
from aspri.streams.server import free_port, valkey_command
from tests.helpers import API_KEY, AUTH

ADMIN_PASSWORD = "admin-Pw-1"
PASSWORD = "s3cret-Pw-2"


@pytest.fixture(scope="module")
def locked_valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Valkey that requires a password for the default user and has the ACL user aspri."""
    port = free_port()
    acl = ["--requirepass", ADMIN_PASSWORD, "--user", "aspri", "on", f">{PASSWORD}", "~*", "&*"]
    argv = [*valkey_command(tmp_path_factory.mktemp("locked"), port), *acl, "+@all"]
    server = subprocess.Popen(argv)
    admin = Redis(port=port, password=ADMIN_PASSWORD)
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except StoreConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield port
    admin.close()
    server.terminate()
    server.wait()


def aspri(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aspri.cli", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_a_gateway_serves_with_an_acl_user_in_redis_url(locked_valkey: int) -> None:
    port = free_port()
    url = f"redis://aspri:{PASSWORD}@127.0.0.1:{locked_valkey}/0"
    env = dict(os.environ, REDIS_URL=url, CRONJOB_PORT=str(port), ASPRI_API_KEY=API_KEY)
    gateway = aspri("cron", env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert gateway.poll() is None, gateway.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the gateway did not become healthy"
            time.sleep(0.05)
        job = {
            "name": "acl",
            "schedule": "0 9 * * *",
            "payload": {"chatId": "1@c.us", "message": "hi"},
        }
        created = httpx.post(f"http://127.0.0.1:{port}/api/jobs", json=job, headers=AUTH)
        assert created.status_code == 201, created.text
    finally:
        gateway.terminate()
        _, err = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, err.decode()[-2000:]
    assert PASSWORD not in err.decode()


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["aspri:wrong-Pw-3@", "", ":wrong-Pw-3@"])
def test_wrong_credentials_stop_a_service_naming_redis_url(
    locked_valkey: int, credentials: str
) -> None:
    url = f"redis://{credentials}127.0.0.1:{locked_valkey}/0"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "aspri.cli", "scheduler"],
        env=dict(os.environ, REDIS_URL=url),
        capture_output=True,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert "REDIS_URL (redis://" in err and "was refused by the server" in err
    assert "wrong-Pw-3" not in err and PASSWORD not in err
    assert time.monotonic() - began < 30


async def test_open_redis_refuses_at_once_without_retrying(locked_valkey: int) -> None:
    url = f"redis://aspri:nope-4@127.0.0.1:{locked_valkey}/0"
    began = time.monotonic()
    with pytest.raises(StoreRefused) as refused:
        async with open_redis(url, Path("unused")):
            pass
    assert time.monotonic() - began < 5
    assert "nope-4" not in str(refused.value) and "aspri:***@" in str(refused.value)


def test_redacted_hides_only_the_password() -> None:
    assert redacted("redis://u:p@h:1/0") == "redis://u:***@h:1/0"
    assert redacted("rediss://:p@h/2") == "rediss://:***@h/2"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"

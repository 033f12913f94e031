"""The system the engine benches drive, started one way for all of them (``bench/engine.py``,
``bench/tracing.py``): one embedded Valkey and the WhatsApp and cron gateways, each a process of
its own as in production, plus the engine workers a bench starts on it; their logs are shown
if the run fails, and every process is stopped (SIGTERM, so each flushes) when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis

from aspri.streams import keys
from aspri.streams.server import EmbeddedServer, free_port

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-api-key"
AUTH = {"X-API-Key": API_KEY}
TRACING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
"""Variables that install tracing in every process: a bench sets them only on purpose."""


def spawn(args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    """A child process whose output goes to a file under ``logs`` (shown if the run fails)."""
    out = (logs / f"{args[-1]}-{time.monotonic_ns()}.log").open("wb")
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def show_logs(logs: Path) -> None:
    for path in sorted(logs.glob("*.log")):
        print(f"--- {path.name}", path.read_text()[-3000:], sep="\n", file=sys.stderr)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def wait_http(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def wait_consumers(redis: Redis, names: list[str], within: float = 300) -> None:
    """Until every worker has joined the group (its MCP child is up by then)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):
            info = await redis.xinfo_consumers(keys.WHATSAPP_MESSAGES, keys.ENGINE_GROUP)
            joined = {
                c["name"].decode() if isinstance(c["name"], bytes) else c["name"] for c in info
            }
            if set(names) <= joined:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the engine workers did not start")
        await asyncio.sleep(0.1)


@dataclass
class Stack:
    """A running system: the WhatsApp gateway's URL, a client of its Valkey, and what a worker
    needs to join it."""

    base: str
    redis: Redis
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        """A process of this system (``env`` on top of the system's), stopped with it."""
        proc = spawn(args, {**self.env, **env}, self.logs)
        self.procs.append(proc)
        return proc


@contextlib.asynccontextmanager
async def running(concurrency: int, env: Mapping[str, str] = {}) -> AsyncIterator[Stack]:
    """Valkey and both gateways up and healthy; ``env`` on top of the bench settings (without
    tracing unless it names an endpoint)."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "valkey", persist=False)
        url = server.start()
        wa_port, cron_port = free_port(), free_port()
        base = f"http://127.0.0.1:{wa_port}"
        settings = {
            **{k: v for k, v in os.environ.items() if k not in TRACING},
            "REDIS_URL": url,
            "ASPRI_DATA_DIR": tmp,
            "WHATSAPP_PORT": str(wa_port),
            "CRONJOB_PORT": str(cron_port),
            "WHATSAPP_URL": base,
            "CRONJOB_URL": f"http://127.0.0.1:{cron_port}",
            "LOG_LEVEL": "warning",
            "ENGINE_CONCURRENCY": str(concurrency),
            "ASPRI_API_KEY": API_KEY,
            "PYTHONPATH": str(ROOT),  # this checkout's code, whichever one the venv installed
            # the load is the subject here, not the per-sender limit that protects the model
            "INBOUND_RATE_PER_MINUTE": "1000000",
            "INBOUND_BURST": "1000000",
            **env,
        }
        stack = Stack(base, Redis.from_url(url), settings, Path(tmp))
        aspri = [sys.executable, "-m", "aspri.cli"]
        stack.spawn([*aspri, "whatsapp"])
        stack.spawn([*aspri, "cron"])
        try:
            await wait_http(f"{base}/health", within=300)
            await wait_http(f"http://127.0.0.1:{cron_port}/health", within=300)
            yield stack
        except BaseException:
            show_logs(stack.logs)
            raise
        finally:
            stop(stack.procs)
            await stack.redis.aclose()
            server.stop()

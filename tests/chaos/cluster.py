"""Real OS processes for the fault-injection suite: ``aspri whatsapp``, ``aspri cron``,
``aspri engine`` (each with its own ``aspri mcp`` child), ``aspri scheduler``, on an embedded
Valkey of their own. The test plays the supervisor: it kills with SIGKILL and starts again.

Every child gets its own session (process group), so teardown can end a killed engine's
orphaned MCP server too; stderr goes to a file per process, shown when a scenario fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from aspri.streams import keys
from aspri.streams.server import EmbeddedServer, free_port
from tests.chaos.checker import Accepted, Observed, observe
from tests.helpers import API_KEY, AUTH, wait_until

LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")
"""``make chaos``: the long forms (10,000 messages) instead of the quick ones."""
START_TIMEOUT = 180.0
"""A worker imports langchain (~10 s of CPU): on a 2-core box shared with other runs a boot
can take a minute or two."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Service:
    """One ``aspri <command>`` process."""

    command: str
    name: str
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aspri.cli",
                self.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """``kill -9`` of this process alone (its children are left to notice)."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
            assert self.proc is not None
            await self.proc.wait()

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL of the whole process group (orphans included)."""
        if self.proc is None:
            return
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        await self.proc.wait()

    def log_tail(self, chars: int = 2500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Cluster:
    """The services of one scenario and the client that plays the people who write."""

    root: Path
    redis_url: str
    redis: Redis
    http: httpx.AsyncClient
    base_env: dict[str, str]
    whatsapp_port: int = field(default_factory=free_port)
    cron_port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)
    engines: list[Service] = field(default_factory=list)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def whatsapp_url(self) -> str:
        return f"http://127.0.0.1:{self.whatsapp_port}"

    @property
    def cron_url(self) -> str:
        return f"http://127.0.0.1:{self.cron_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **self.base_env,
            "REDIS_URL": self.redis_url,
            "ASPRI_DATA_DIR": str(self.root / "data"),
            "WHATSAPP_PORT": str(self.whatsapp_port),
            "CRONJOB_PORT": str(self.cron_port),
            "WHATSAPP_URL": self.whatsapp_url,
            "CRONJOB_URL": self.cron_url,
            **overrides,
        }

    async def spawn(self, command: str, name: str, **env: str) -> Service:
        service = Service(command, name, self.env(**env), self.root / f"{name}.log")
        await service.start()
        self.services.append(service)
        return service

    async def gateways(self, *, cron: bool = False) -> None:
        """The WhatsApp gateway (and the cron gateway), healthy."""
        started = [await self.spawn("whatsapp", "whatsapp")]
        urls = [self.whatsapp_url]
        if cron:
            started.append(await self.spawn("cron", "cron"))
            urls.append(self.cron_url)
        for service, url in zip(started, urls, strict=True):
            await self.wait_healthy(service, url)

    async def wait_healthy(self, service: Service, url: str) -> None:
        async def healthy() -> bool:
            if not service.alive:
                raise AssertionError(f"{service.command} exited:\n{service.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                return (await self.http.get(f"{url}/health", timeout=2)).status_code == 200
            return False

        await wait_until(healthy, START_TIMEOUT, interval=0.1)

    async def engines_up(self, n: int, **env: str) -> None:
        """``n`` engine workers started side by side, each consuming."""
        started = [await self.engine(**env) for _ in range(n)]
        await wait_until(lambda: self._all_consuming(started), START_TIMEOUT, interval=0.2)

    async def engine(self, **env: str) -> Service:
        """One more engine worker under a new consumer name (as a restarted process has)."""
        name = f"engine-{next(self._names)}"
        service = await self.spawn("engine", name, CONSUMER_NAME=name, **env)
        self.engines.append(service)
        return service

    async def consuming(self) -> list[Service]:
        """The live workers that have read from the work queue (they are in the group)."""
        try:
            found = await self.redis.xinfo_consumers(keys.WHATSAPP_MESSAGES, keys.ENGINE_GROUP)
        except Exception:
            return []
        names = {c["name"].decode() for c in found}
        return [e for e in self.engines if e.alive and e.name in names]

    async def _all_consuming(self, services: list[Service]) -> bool:
        for s in services:
            if not s.alive:
                raise AssertionError(f"{s.name} exited:\n{s.log_tail()}")
        return set(map(id, services)) <= set(map(id, await self.consuming()))

    async def kill_random_engine(self, rng: random.Random, *, keep: int = 1) -> int | None:
        """``kill -9`` of one consuming worker, if more than ``keep`` consume; when (ms) it
        died, or None when none could be spared."""
        ready = await self.consuming()
        if len(ready) <= keep:
            return None
        victim = rng.choice(ready)
        await victim.kill()
        self.engines.remove(victim)
        return now_ms()

    async def drained(self, stream: str = keys.WHATSAPP_MESSAGES) -> bool:
        """Every entry of ``stream`` read and acked by the engine group."""
        with contextlib.suppress(Exception):
            for g in await self.redis.xinfo_groups(stream):
                if g["name"].decode() == keys.ENGINE_GROUP:
                    return bool(g["pending"] == 0 and g["lag"] == 0)
        return False

    async def settle(self, load: Load, within: float) -> Observed:
        """Wait until every accepted message is answered and the work queue is drained (so
        no late duplicate can still come), then return what the chat streams hold."""
        wanted = {a.event_id for a in load.accepted}

        async def done() -> Observed | None:
            if not await self.drained():
                return None
            observed = await observe(self.redis, load.chat_ids)
            return observed if wanted <= observed.handled() else None

        try:
            result: Observed = await wait_until(done, within, interval=0.5)
        except AssertionError:
            return await observe(self.redis, load.chat_ids)  # the checker says what is missing
        return result

    async def stop(self) -> None:
        for service in reversed(self.services):
            await service.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.log_path.name} (exit {s.proc.returncode if s.proc else None})\n{s.log_tail()}"
            for s in self.services
        )


@contextlib.asynccontextmanager
async def cluster(root: Path, **env: str) -> AsyncIterator[Cluster]:
    """An embedded Valkey of the scenario's own and a client; services are added by the test."""
    server = EmbeddedServer(root / "valkey")
    url = server.start()
    redis = Redis.from_url(url)
    base_env = {
        **os.environ,
        "ASPRI_API_KEY": API_KEY,
        "ASPRI_NO_BROWSER": "1",
        "LOG_LEVEL": "warning",
        "CLAIM_IDLE_MS": "1000",
        "RETRY_BACKOFF_SECONDS": "0.1",
        "ENGINE_CONCURRENCY": "8",
        # the load is many quick messages per chat: the per-sender inbound limit would throttle
        # the long form's 100 per chat, and throttling is not what these scenarios measure
        "INBOUND_RATE_PER_MINUTE": "1000000",
        "INBOUND_BURST": "1000000",
        "OTEL_SDK_DISABLED": "true",
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "scripted",
        "OPENAI_API_KEY": "not-needed",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # no model unless a test has one
        "LLM_TIMEOUT_SECONDS": "30",
        **env,
    }
    base_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    try:
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
            c = Cluster(root, url, redis, http, base_env)
            try:
                yield c
            except BaseException:
                print(c.logs())
                raise
            finally:
                await c.stop()
    finally:
        await redis.aclose()
        server.stop()


@dataclass
class Load:
    """People writing: ``chats`` numbers, each sending its messages in order (the next one
    after the gateway took the previous one), ``concurrency`` requests in flight at most."""

    cluster: Cluster
    chats: int
    per_chat: int
    text: str = "/help {token}"
    accepted: list[Accepted] = field(default_factory=list)
    indeterminate: list[str] = field(default_factory=list)
    """Texts of messages whose outcome the client could not learn (timeout, 5xx)."""
    numbers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        base = random.randrange(10**9, 10**10)
        self.numbers = [f"62{base + i}" for i in range(self.chats)]

    @property
    def chat_ids(self) -> list[str]:
        return [f"{n}@c.us" for n in self.numbers]

    async def run(
        self, concurrency: int = 16, *, pace_s: float = 0.0, seqs: range | None = None
    ) -> None:
        """Every chat sends its messages ``seqs`` (all of them by default)."""
        room = asyncio.Semaphore(concurrency)

        async def person(number: str) -> None:
            for seq in seqs or range(self.per_chat):
                async with room:
                    await self.say(number, seq)
                if pace_s:
                    await asyncio.sleep(pace_s)

        await asyncio.gather(*(person(n) for n in self.numbers))

    async def say(self, number: str, seq: int) -> None:
        token = f"m-{number}-{seq}"
        body: dict[str, Any] = {"from": number, "text": self.text.format(token=token)}
        try:
            r = await self.cluster.http.post(
                f"{self.cluster.whatsapp_url}/api/local/messages", json=body
            )
        except httpx.HTTPError:
            self.indeterminate.append(body["text"])
            return
        if r.status_code == 202:
            data = r.json()["data"]
            self.accepted.append(Accepted(data["eventId"], data["chatId"], seq))
        elif r.status_code >= 500:
            self.indeterminate.append(body["text"])
        else:
            raise AssertionError(f"the gateway refused a message: {r.status_code} {r.text}")


def children(pid: int, needle: str) -> list[int]:
    """Pids of the direct children of ``pid`` whose command line contains ``needle``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if parent == str(pid) and needle in cmd:
            out.append(int(entry.name))
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

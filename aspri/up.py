"""``aspri up``: the whole assistant on one machine, as one supervised process tree.

First it checks that the gateways' ports are free (else it stops at once, naming the port and
the variable to change). Then it starts the embedded Valkey (unless ``REDIS_URL`` is set), the
WhatsApp gateway, the cron gateway, the scheduler and one engine worker (which spawns its MCP
server), each a child process in its own session, sharing the store's URL. A child that dies
is restarted (Valkey on the same port and data directory); one that keeps failing is reported
with its last output and ends ``aspri up`` with status 1. The banner comes once every part is
healthy, or after a deadline with the parts that are not. Ctrl-C (SIGINT) or SIGTERM stops the
engine and scheduler, then the gateways, then Valkey, so no service loses its store while
stopping and a second start finds every chat and job again. ``ASPRI_DATA_DIR/up.json`` says
what runs (each child's current pid), for tools and fault-injection tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import webbrowser
from pathlib import Path

import httpx
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError

from aspri import apikey
from aspri.config import Settings
from aspri.ports import busy_ports, port_message
from aspri.streams.connect import STORE_DOWN, StoreRefused, redacted, refused
from aspri.streams.health import instances
from aspri.streams.server import free_port, valkey_command
from aspri.supervisor import Child, Spec, Supervisor

log = logging.getLogger(__name__)

VALKEY = "valkey"
SERVICES = ("whatsapp", "cron", "scheduler", "engine")
"""Start order, after Valkey."""
STOP_ORDER = (("engine", "scheduler"), ("whatsapp", "cron"))
"""Consumers first, then the gateways they send through; Valkey last of all."""
READY_TIMEOUT_S = 90.0
CONFIG_ERROR = 2
"""The exit status of an ``aspri`` command that stopped on a configuration error."""


class StartFailed(Exception):
    """``aspri up`` cannot start; the message says why and what to do."""


def state_file(settings: Settings) -> Path:
    """Where ``aspri up`` says what runs: its pid, the store's URL, each child's current pid
    (for tools and fault-injection tests that kill a part on purpose)."""
    return settings.data_dir / "up.json"


class StateFile:
    """Keeps ``state_file`` current: rewritten (atomically) whenever a child (re)starts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.redis_url: str | None = None
        self.supervisor: Supervisor | None = None

    def write(self, _child: Child | None = None) -> None:
        if self.supervisor is None:
            return
        children = {name: c.pid for name, c in self.supervisor.children.items()}
        body = {"pid": os.getpid(), "redisUrl": self.redis_url, "children": children}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body))
        temporary.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def service_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """The environment every service gets: ours, plus where the store and the data are, and
    the API key in force (so every child agrees on it)."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "ASPRI_DATA_DIR": str(settings.data_dir),
        "ASPRI_API_KEY": apikey.effective(settings) or apikey.OFF,
    }


def service_spec(name: str, env: dict[str, str]) -> Spec:
    if name == "scheduler" and env.get("METRICS_PORT"):  # the engine has METRICS_PORT itself
        env = {**env, "METRICS_PORT": str(int(env["METRICS_PORT"]) + 1)}
    return Spec(name, [sys.executable, "-m", "aspri.cli", name], env=env)


async def start_store(supervisor: Supervisor, settings: Settings) -> str:
    """The store's URL: ``REDIS_URL`` once it answers, else a supervised embedded Valkey."""
    if settings.redis_url is not None:
        await _reachable(settings.redis_url, timeout_s=10.0)
        return settings.redis_url
    data = (settings.data_dir / "valkey").resolve()
    port = free_port()
    child = await supervisor.start(
        Spec(VALKEY, valkey_command(data, port), cwd=data, log_file=data / "valkey.log")
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline and not supervisor.failed.is_set():
        with contextlib.suppress(StartFailed):
            await _reachable(url, timeout_s=0.5)
            log.info("embedded valkey listening", extra={"url": url, "data": str(data)})
            return url
    tail = "\n".join(f"    {line}" for line in child.last_lines())
    raise StartFailed(f"aspri up: the embedded Valkey did not start. Its log ({data}):\n{tail}")


async def _reachable(url: str, *, timeout_s: float) -> None:
    """Return once ``url`` answers PING within ``timeout_s``; else StartFailed/StoreRefused."""
    client = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                await client.ping()
                return
            except (AuthenticationError, NoPermissionError) as exc:
                raise refused(url, exc) from None
            except STORE_DOWN as exc:
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"aspri up: REDIS_URL ({redacted(url)}) does not answer: {exc}"
                    ) from None
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def problems(settings: Settings, redis: Redis, supervisor: Supervisor) -> dict[str, str]:
    """Each part that is not healthy yet, with what is wrong with it (empty: all healthy)."""
    out: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=2.0) as client:
        for name, port in (("whatsapp", settings.whatsapp_port), ("cron", settings.cronjob_port)):
            try:
                response = await client.get(f"http://127.0.0.1:{port}/health")
                if response.status_code != 200:
                    out[name] = f"/health answers {response.status_code}"
            except httpx.HTTPError:
                out[name] = f"not answering on port {port}"
    for name in ("scheduler", "engine"):
        pid = supervisor[name].pid
        try:
            live = [i for i in await instances(redis, name) if i.up and i.record.get("pid") == pid]
        except Exception as exc:
            out[name] = f"event log unreachable ({exc})"
            continue
        if not live:
            out[name] = "no health record yet"
    for name, child in supervisor.children.items():
        if child.state == "failed":
            out[name] = "keeps failing"
    return out


async def wait_ready(
    settings: Settings, redis: Redis, supervisor: Supervisor, stopping: asyncio.Event
) -> dict[str, str]:
    """Poll ``problems`` until none are left, a stop is asked, a child is given up, or
    ``READY_TIMEOUT_S`` passes; returns what is still wrong."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        left = await problems(settings, redis, supervisor)
        if not left or stopping.is_set() or supervisor.failed.is_set():
            return left
        if time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


async def model_status(settings: Settings) -> tuple[bool, str]:
    """Whether the configured model can answer, and a sentence saying so (or what to do)."""
    from aspri.agents.llm import probe  # langchain takes seconds to import: not before needed

    problem = await probe(settings)
    if problem is None:
        return True, f"{settings.llm_provider} / {settings.model_name}"
    hint = ""
    if settings.llm_provider == "ollama":
        hint = (
            f" Start it (`ollama serve`, then `ollama pull {settings.model_name}`), or choose "
            "LLM_PROVIDER=openai (OPENAI_API_KEY, OPENAI_BASE_URL) or LLM_PROVIDER=anthropic "
            "(ANTHROPIC_API_KEY)."
        )
    return False, f"{problem}.{hint} Slash commands (/help, /remind, /jobs) already work."


def chat_link(settings: Settings) -> str:
    """The web chat's address: a one-time sign-in link unless ``ASPRI_API_KEY=off``."""
    wa = f"http://127.0.0.1:{settings.whatsapp_port}"
    key = apikey.effective(settings)
    return f"{wa}/chat" if key is None else f"{wa}/chat/login?token={apikey.login_token(key)}"


def _banner(settings: Settings, model: str, unhealthy: dict[str, str]) -> str:
    wa = f"http://127.0.0.1:{settings.whatsapp_port}"
    cron = f"http://127.0.0.1:{settings.cronjob_port}"
    key = apikey.effective(settings)
    where = "ASPRI_API_KEY=off: the APIs are open" if key is None else _key_source(settings)
    head = ["  ASPRI is up."]
    if unhealthy:
        head = [f"  ASPRI started, but not every part is healthy after {READY_TIMEOUT_S:.0f} s:"]
        head += [f"    {name:<16}{why}" for name, why in unhealthy.items()]
    return "\n".join(
        [
            "",
            *head,
            f"  Web chat          {chat_link(settings)}",
            "                    (one-time link; `aspri link` prints a new one)",
            f"  WhatsApp API      {wa}/schema/swagger",
            f"  Cron API          {cron}/schema/swagger",
            f"  API key           {where}",
            f"  Model             {model}",
            f"  Data              {settings.data_dir.resolve()}",
            "  Stop              Ctrl-C",
            "",
        ]
    )


def _key_source(settings: Settings) -> str:
    if os.environ.get("ASPRI_API_KEY", "").strip():
        return "from ASPRI_API_KEY (send it as X-API-Key)"
    return f"in {apikey.key_file(settings.data_dir).resolve()} (send it as X-API-Key)"


async def run(settings: Settings, *, open_browser: bool = True) -> int:
    busy = busy_ports(settings)  # again: `aspri.cli` checked before importing this module
    if busy:
        print(port_message(busy), file=sys.stderr)
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    state = StateFile(state_file(settings))
    supervisor = Supervisor(fatal_codes=frozenset({CONFIG_ERROR}), on_start=state.write)
    state.supervisor = supervisor
    redis: Redis | None = None
    try:
        redis_url = state.redis_url = await start_store(supervisor, settings)
        state.write()
        redis = Redis.from_url(redis_url, socket_connect_timeout=1.0, socket_timeout=5.0)
        env = service_env(settings, redis_url)
        for name in SERVICES:
            await supervisor.start(service_spec(name, env))
        unhealthy = await wait_ready(settings, redis, supervisor, stopping)
        if supervisor.failed.is_set():
            return _gave_up(supervisor)
        if not stopping.is_set():
            ok, model = await model_status(settings)
            print(
                _banner(settings, model if ok else f"NOT READY: {model}", unhealthy),
                file=sys.stderr,
            )
            if open_browser:
                with contextlib.suppress(webbrowser.Error):
                    webbrowser.open(chat_link(settings))  # its own link: the printed one stays
        failed = asyncio.create_task(supervisor.failed.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({failed, stop}, return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        stop.cancel()
        if supervisor.failed.is_set() and not stopping.is_set():
            return _gave_up(supervisor)
        log.info("stopping ASPRI")
        return 0
    except (StartFailed, StoreRefused) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        await supervisor.stop(*STOP_ORDER)
        state.remove()
        if redis is not None:
            await redis.aclose()
        log.info("ASPRI stopped")


def _gave_up(supervisor: Supervisor) -> int:
    name = supervisor.gave_up.name if supervisor.gave_up else "a service"
    print(
        f"aspri up: {name} keeps failing (its last output is above); stopping everything.",
        file=sys.stderr,
    )
    return 1


def main(settings: Settings) -> int:
    no_browser = os.environ.get("ASPRI_NO_BROWSER", "").lower() in {"1", "true", "yes"}
    return asyncio.run(run(settings, open_browser=not no_browser))

"""``aspri up``: the whole assistant on one machine, as one supervised process tree.

It starts the embedded Valkey (unless ``REDIS_URL`` is set), then the WhatsApp gateway, the cron
gateway, the scheduler and one engine worker (which spawns its MCP server) as child processes
sharing that URL. A child that dies is restarted with backoff; Ctrl-C (SIGINT) or SIGTERM stops
them in reverse order and then the server, so a second start finds every chat and job again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import webbrowser
from dataclasses import dataclass, field

import httpx

from aspri.agents.llm import probe
from aspri.config import Settings
from aspri.streams.server import EmbeddedServer

log = logging.getLogger(__name__)

SERVICES = ("whatsapp", "cron", "scheduler", "engine")
"""Start order; stopped in reverse, so the engine stops consuming before the gateways go."""


@dataclass
class Child:
    """One supervised service process."""

    name: str
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aspri.cli", self.name, env=self.env, start_new_session=True
        )
        log.info("service started", extra={"service": self.name, "pid": self.process.pid})

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("service did not stop in time; killing it", extra={"service": self.name})
            proc.kill()
            await proc.wait()


async def _supervise(child: Child, stopping: asyncio.Event) -> None:
    """Restart the child whenever it exits on its own, backing off when it keeps crashing."""
    while not stopping.is_set():
        await child.start()
        assert child.process is not None
        waiter = asyncio.create_task(child.process.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if stopping.is_set():
            waiter.cancel()
            return
        code = child.process.returncode
        ran = time.monotonic() - child.started_at
        child.restarts = 0 if ran > 30 else child.restarts + 1
        delay = min(30.0, 0.5 * 2**child.restarts)
        log.error(
            "service exited; restarting",
            extra={"service": child.name, "code": code, "in_seconds": delay},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)


async def _wait_healthy(url: str, timeout: float = 30.0) -> bool:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return True
            await asyncio.sleep(0.2)
    return False


async def model_status(settings: Settings) -> tuple[bool, str]:
    """Whether the configured model can answer, and a sentence saying so (or what to do)."""
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


def _banner(settings: Settings, model: str) -> str:
    wa = f"http://127.0.0.1:{settings.whatsapp_port}"
    cron = f"http://127.0.0.1:{settings.cronjob_port}"
    return "\n".join(
        [
            "",
            "  ASPRI is up.",
            f"  Web chat          {wa}/chat",
            f"  WhatsApp API      {wa}/schema/swagger",
            f"  Cron API          {cron}/schema/swagger",
            f"  Model             {model}",
            f"  Data              {settings.data_dir.resolve()}",
            "  Stop              Ctrl-C",
            "",
        ]
    )


async def run(settings: Settings, *, open_browser: bool = True) -> int:
    server: EmbeddedServer | None = None
    redis_url = settings.redis_url
    if redis_url is None:
        server = EmbeddedServer(settings.data_dir / "valkey")
        redis_url = server.start()
    env = {**os.environ, "REDIS_URL": redis_url, "ASPRI_DATA_DIR": str(settings.data_dir)}
    children = [Child(name, env) for name in SERVICES]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    supervisors = [asyncio.create_task(_supervise(c, stopping)) for c in children]
    try:
        healthy = await asyncio.gather(
            _wait_healthy(f"http://127.0.0.1:{settings.whatsapp_port}/health"),
            _wait_healthy(f"http://127.0.0.1:{settings.cronjob_port}/health"),
        )
        if not stopping.is_set():
            if not all(healthy):
                log.error("a gateway did not become healthy; see the log above")
            ok, model = await model_status(settings)
            print(_banner(settings, model if ok else f"NOT READY: {model}"), file=sys.stderr)
            if open_browser:
                with contextlib.suppress(webbrowser.Error):
                    webbrowser.open(f"http://127.0.0.1:{settings.whatsapp_port}/chat")
        await stopping.wait()
        log.info("stopping ASPRI")
    finally:
        stopping.set()
        await asyncio.gather(*supervisors, return_exceptions=True)
        for child in reversed(children):
            await child.stop()
        if server is not None:
            server.stop()
    return 0


def main(settings: Settings) -> int:
    no_browser = os.environ.get("ASPRI_NO_BROWSER", "").lower() in {"1", "true", "yes"}
    return asyncio.run(run(settings, open_browser=not no_browser))

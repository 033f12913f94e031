"""Benchmark of the MCP server: tool-call round trips against a direct REST call, same run.

    .venv/bin/python bench/mcp.py                   # the full run (make bench)
    .venv/bin/python bench/mcp.py --calls 500       # quicker

Starts its own embedded Valkey, ``aspri whatsapp`` and ``aspri cron`` on free ports, creates one
job, then measures sequential round trips (one request in flight, after a warm-up) of:

- REST: ``GET /api/jobs/{jobId}`` on the cron gateway with a keep-alive ``httpx.AsyncClient``
  (measured first and again last, to show how steady the machine was);
- stdio: ``tools/call cronjob_get`` to ``aspri mcp`` spawned over stdio (as the engine does);
- HTTP: ``tools/call cronjob_get`` to ``aspri mcp --transport http`` over streamable HTTP, with a
  bearer token;
each MCP variant once with the SDK's stock ``ClientSession.call_tool`` and once the way the
engine calls (``aspri.agents.tools.ResultCheck``: the same output-schema check of each result,
with validators compiled once instead of the schema re-validated against its metaschema on every
call — python-sdk issue #3133).

The tool call does the same REST call inside the MCP server, so the difference is the cost of
the MCP hop: JSON-RPC framing, argument and output validation, the span and the log line. All
processes run with their default settings (INFO logs to a file, spans created, not exported).
"""

# ruff: noqa: E402 -- the path fix below must run before the SDK is imported

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/mcp.py: without this, `import mcp` would import the file itself.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import argparse
import asyncio
import os
import platform
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from aspri.agents.tools import ResultCheck
from aspri.streams.server import EmbeddedServer, free_port

ASPRI = str(Path(sys.executable).parent / "aspri")
TOKEN = "bench-token"
API_KEY = "bench-api-key"
"""The gateways' key (``ASPRI_API_KEY``) in this run; the MCP HTTP transport has its own token."""


Call = Callable[[ClientSession, dict[str, Any]], Awaitable[CallToolResult]]


async def stock(session: ClientSession, arguments: dict[str, Any]) -> CallToolResult:
    return await session.call_tool("cronjob_get", arguments)


async def engine_path(session: ClientSession) -> Call:
    """The engine's call: ``tools/call`` through ``send_request``, checked by ``ResultCheck``."""
    results = ResultCheck()
    results.learn((await session.list_tools()).tools)

    async def call(session: ClientSession, arguments: dict[str, Any]) -> CallToolResult:
        return await results.call(
            session, "cronjob_get", arguments, read_timeout=timedelta(seconds=30), meta=None
        )

    return call


@dataclass
class Result:
    name: str
    calls: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    name: str, call: Callable[[], Awaitable[None]], calls: int, warmup: int
) -> Result:
    for _ in range(warmup):
        await call()
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        await call()
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    return Result(name, calls, time.perf_counter() - started, latencies)


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, what: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"{what} exited with {proc.returncode}")
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"{what} did not become healthy at {url}")


@asynccontextmanager
async def process(args: list[str], env: dict[str, str], url: str, log: Path) -> AsyncIterator[None]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            ASPRI, *args, env=os.environ | env, stdout=out, stderr=out
        )
    try:
        await wait_healthy(url, proc, "aspri " + " ".join(args))
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()


def check(result: object) -> None:
    if getattr(result, "isError", False):
        raise SystemExit(f"tool call failed: {result}")


async def run(calls: int, warmup: int, workdir: Path) -> list[Result]:
    with EmbeddedServer(workdir / "valkey", persist=False) as redis_url:
        cron_port, whatsapp_port, mcp_port = free_port(), free_port(), free_port()
        cron_url = f"http://127.0.0.1:{cron_port}"
        env = {
            "REDIS_URL": redis_url,
            "ASPRI_DATA_DIR": str(workdir),
            "CRONJOB_PORT": str(cron_port),
            "WHATSAPP_PORT": str(whatsapp_port),
            "MCP_PORT": str(mcp_port),
            "MCP_TOKEN": TOKEN,
            "ASPRI_API_KEY": API_KEY,
            "CRONJOB_URL": cron_url,
            "WHATSAPP_URL": f"http://127.0.0.1:{whatsapp_port}",
        }
        async with (
            process(["cron"], env, cron_url, workdir / "cron.log"),
            process(
                ["mcp", "--transport", "http"],
                env,
                f"http://127.0.0.1:{mcp_port}",
                workdir / "mcp-http.log",
            ),
            httpx.AsyncClient(timeout=30, headers={"X-API-Key": API_KEY}) as rest,
        ):
            created = await rest.post(
                f"{cron_url}/api/jobs",
                json={
                    "name": "bench",
                    "schedule": "0 8 * * *",
                    "payload": {"chatId": "6281234567890@c.us", "message": "hi"},
                },
            )
            job_id = created.json()["data"]["jobId"]
            arguments = {"jobId": job_id}

            async def rest_call() -> None:
                response = await rest.get(f"{cron_url}/api/jobs/{job_id}")
                response.raise_for_status()

            results = [await measure("REST GET /api/jobs/{id}", rest_call, calls, warmup)]

            params = StdioServerParameters(command=ASPRI, args=["mcp"], env=env)
            for label in ("", " (engine's checked path)"):
                with (workdir / "mcp-stdio.log").open("a") as errlog:
                    async with (
                        stdio_client(params, errlog=errlog) as (read, write),
                        ClientSession(read, write) as session,
                    ):
                        await session.initialize()
                        call = await engine_path(session) if label else stock

                        async def stdio_call(call: Call = call) -> None:
                            check(await call(session, arguments))

                        results.append(
                            await measure(f"MCP stdio{label}", stdio_call, calls, warmup)
                        )

            headers = {"Authorization": f"Bearer {TOKEN}"}
            url = f"http://127.0.0.1:{mcp_port}/mcp"
            for label in ("", " (engine's checked path)"):
                async with (
                    httpx.AsyncClient(headers=headers, timeout=30) as client,
                    streamable_http_client(url, http_client=client) as (read, write, _),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    call = await engine_path(session) if label else stock

                    async def http_call(call: Call = call) -> None:
                        check(await call(session, arguments))

                    results.append(await measure(f"MCP HTTP{label}", http_call, calls, warmup))
            results.append(await measure("REST GET (again)", rest_call, calls, warmup))
    return results


def report(results: list[Result]) -> None:
    print(
        f"python {platform.python_version()}, mcp {version('mcp')}, httpx {version('httpx')}, "
        f"{os.cpu_count()} CPUs; tool cronjob_get vs REST GET /api/jobs/{{jobId}}, "
        "sequential round trips, one in flight"
    )
    print(f"{'':34} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r.name:34} {r.per_second:9.0f} {r.quantile(0.5):8.2f} {r.quantile(0.99):8.2f}")
    rest = results[0]
    print()
    for r in results[1:-1]:
        print(
            f"{r.name:34} {r.per_second / rest.per_second:5.2f}x the REST rate, "
            f"p99 {r.quantile(0.99) / rest.quantile(0.99):5.2f}x "
            f"(+{r.quantile(0.99) - rest.quantile(0.99):.2f} ms)"
        )
    drift = results[-1].per_second / rest.per_second
    print(f"REST rate at the end vs the start of the run: {drift:.2f}x (machine steadiness)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aspri-bench-mcp-") as tmp:
        report(asyncio.run(run(args.calls, args.warmup, Path(tmp))))


if __name__ == "__main__":
    main()

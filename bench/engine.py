"""End-to-end benchmark of the AI engine, with an instant scripted model in place of the LLM.

    .venv/bin/python bench/engine.py                   # 1 then 2 workers, 100 chats (~1 min)
    .venv/bin/python bench/engine.py --workers 1 --chats 20 --messages 10

Everything runs as in production, one process per part, on its own embedded Valkey: the
WhatsApp and cron gateways (``aspri whatsapp``, ``aspri cron``), and 1 or 2 engine workers
(this file's ``worker`` mode: the real ``Engine`` with its own ``aspri mcp`` child over stdio,
the agent built by ``build_agent``, and a chat model that answers ``re: <text>`` at once: a
turn that calls no tool never enters the LangGraph graph, and its reply goes straight to the
gateway, so the MCP children idle here unless the model calls a tool).

Load: C chats write in the local web chat (``POST /api/local/messages``), each waiting for the
reply (seen on the gateway's live stream ``/api/local/events``) before writing again, so
every message is its own turn. Reported: turns/s, inbound-to-reply latency p50/p99, the CPU
milliseconds per turn of each process (engine workers, their MCP servers, the gateways, Valkey;
``bench/cpu.py``), one chat alone (unloaded latency), and where a turn's time goes — the agent
framework (LangChain around the instant model) against the pipeline (gateway, stream delivery,
session fold, the send, turn record), from the ``chat:turn`` records' timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from statistics import mean, quantiles
from typing import Any

import httpx
import msgspec
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.cpu (not bench/ itself: bench/mcp.py would shadow the SDK)

from aspri.schemas.chat import ChatTurn  # noqa: E402
from aspri.streams import EventLog, keys  # noqa: E402
from bench.cpu import cpu_by_role, per_unit_ms  # noqa: E402
from bench.stack import AUTH, running, stop, wait_consumers  # noqa: E402


class InstantModel(GenericFakeChatModel):
    """Answers ``re: <the last user message>`` immediately; accepts tools and ignores them."""

    messages: Any = iter(())

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> InstantModel:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=f"re: {last}"))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages)


# ------------------------------------------------------------------------- worker mode


def run_worker(traced: bool = False) -> None:
    """One engine worker with the instant model (the environment holds its settings);
    ``traced``: tracing set up from the environment as ``aspri engine`` does (bench/tracing.py)."""
    from aspri.agents.engine import Engine
    from aspri.agents.tools import McpTools
    from aspri.config import Settings
    from aspri.telemetry.logs import setup_logging
    from aspri.telemetry.tracing import setup_tracing

    settings = Settings.from_env()
    service = "aspri-engine" if traced else "bench-engine"
    setup_logging(service, "text", "WARNING")
    if traced:
        setup_tracing(service)

    async def serve() -> None:
        redis = Redis.from_url(settings.redis_url or "")
        tools = McpTools(settings)
        await tools.start()
        try:
            engine = Engine(settings, redis, tools, InstantModel())
            await engine.app.run_until_signal()
        finally:
            await tools.close()
            await redis.aclose()

    asyncio.run(serve())


# ------------------------------------------------------------------------- the run


ROLES = (
    ("engine.py worker", "engine workers"),
    ("aspri.cli mcp", "their MCP servers"),
    ("aspri.cli whatsapp", "WhatsApp gateway"),
    ("aspri.cli cron", "cron gateway"),
    ("valkey", "Valkey"),
)
"""Which process is which (a needle in its command line): the CPU per turn is read per role."""


async def valkey_calls(redis: Redis) -> dict[str, int]:
    """Commands Valkey has run so far, by name (those inside Lua scripts included)."""
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


class Replies:
    """The gateway's live stream: every outbound message, routed to the chat waiting for it."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/api/local/events"
        self.waiting: dict[str, asyncio.Queue[tuple[float, str]]] = {}
        self.resent = 0

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        connected = asyncio.Event()
        task = asyncio.create_task(self._listen(connected))
        await asyncio.wait_for(connected.wait(), 10)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, connected: asyncio.Event) -> None:
        async with (
            httpx.AsyncClient(timeout=None, headers=AUTH) as client,
            client.stream("GET", self.url) as response,
        ):
            connected.set()
            data = ""
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "" and data:
                    message = msgspec.json.decode(data)
                    data = ""
                    queue = self.waiting.get(message.get("chatId", ""))
                    if message.get("fromMe") and queue is not None:
                        queue.put_nowait((time.perf_counter(), message.get("body", "")))


async def converse(
    http: httpx.AsyncClient, base: str, replies: Replies, number: str, messages: int
) -> list[float]:
    """One person writing ``messages`` messages, each after the previous reply arrived."""
    chat = f"{number}@c.us"
    queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    replies.waiting[chat] = queue
    latencies = []
    for i in range(messages):
        text = f"{number} message {i}"
        began = time.perf_counter()
        try:
            r = await http.post(f"{base}/api/local/messages", json={"from": number, "text": text})
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # a kept-alive connection the gateway closed as the request went out (seen at load
            # average 10+); the message was not taken, so it is sent again once
            replies.resent += 1
            r = await http.post(f"{base}/api/local/messages", json={"from": number, "text": text})
        r.raise_for_status()
        arrived, body = await asyncio.wait_for(queue.get(), 60)
        if body != f"re: {text}":
            raise RuntimeError(f"unexpected reply {body!r} to {text!r}")
        latencies.append((arrived - began) * 1000)
    return latencies


def chat_client() -> httpx.AsyncClient:
    """One chat's connection to the gateway (plain HTTP on this machine: no TLS set-up); idle
    connections dropped before the server's keep-alive timeout (uvicorn: 5 s) closes them."""
    limits = httpx.Limits(max_connections=1, keepalive_expiry=2)
    return httpx.AsyncClient(timeout=60, limits=limits, headers=AUTH, verify=False)


async def measure(
    redis: Redis, base: str, workers: int, persons: int, messages: int, run: int
) -> dict[str, float]:
    numbers = [f"62{run}{w:08d}" for w in range(persons)]
    replies = Replies(base)
    warm = [f"6299{run}{w:07d}" for w in range(8)]
    async with contextlib.AsyncExitStack() as clients, replies.listening():
        # one client per chat: httpx's pool walks all its connections on every request, which
        # with 100 chats on one pool cost the driver more CPU than the rest of its work
        http = {n: await clients.enter_async_context(chat_client()) for n in [*warm, *numbers]}
        # warm-up: a first turn in a fresh worker pays for lazy imports and compilation; a
        # few people at once so that every worker gets some
        await asyncio.gather(*(converse(http[n], base, replies, n, 3) for n in warm))
        cpu_before = cpu_by_role(ROLES)
        calls_before = await valkey_calls(redis)
        began = time.perf_counter()
        per_person = await asyncio.gather(
            *(converse(http[n], base, replies, n, messages) for n in numbers)
        )
        elapsed = time.perf_counter() - began
        cpu_after = cpu_by_role(ROLES)
        calls_after = await valkey_calls(redis)
    latencies = sorted(x for xs in per_person for x in xs)
    log = EventLog(redis)
    deadline = time.monotonic() + 30
    while True:  # a turn is recorded just after its reply went out
        turns: list[ChatTurn] = []
        for n in numbers:
            turns += [
                e.data
                for e in await log.read(keys.chat(f"{n}@c.us"))
                if isinstance(e.data, ChatTurn)
            ]
        if len(turns) >= persons * messages or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    cuts = quantiles(latencies, n=100)
    cpu = per_unit_ms(cpu_before, cpu_after, len(turns))
    calls = {
        name: (n - calls_before.get(name, 0)) / len(turns)
        for name, n in calls_after.items()
        if n > calls_before.get(name, 0)
    }
    total = mean(t.timings.total_ms for t in turns)
    return {
        "workers": workers,
        "chats": persons,
        "turns": len(turns),
        "turns_per_s": len(turns) / elapsed,
        "p50": cuts[49],
        "p99": cuts[98],
        "latency_mean": mean(latencies),
        "fold": mean(t.timings.fold_ms for t in turns),
        "agent": mean(t.timings.agent_ms for t in turns),
        "llm": mean(t.timings.llm_ms for t in turns),
        "send": mean(t.timings.send_ms for t in turns),
        "turn_total": total,
        "cpu": cpu,  # type: ignore[dict-item]
        "resent": replies.resent,
        "calls": calls,  # type: ignore[dict-item]
    }


async def bench(args: argparse.Namespace) -> None:
    results: list[tuple[dict[str, float], dict[str, float]]] = []
    async with running(args.concurrency) as stack:
        for run, n in enumerate(args.workers, start=1):
            names = [f"bench-{run}-{i}" for i in range(n)]
            # -P: bench/ not on sys.path, where bench/mcp.py would shadow the MCP SDK
            worker = [sys.executable, "-P", __file__, "worker"]
            procs = [stack.spawn(worker, CONSUMER_NAME=c) for c in names]
            try:
                await wait_consumers(stack.redis, names)
                light = await measure(stack.redis, stack.base, n, 1, args.unloaded, run * 10 + 1)
                busy = await measure(
                    stack.redis, stack.base, n, args.chats, args.messages, run * 10
                )
                results.append((light, busy))
                progress(light, busy)
            finally:
                stop(procs)
    report(results, args)


def progress(light: dict[str, float], busy: dict[str, float]) -> None:
    """One line per worker count as soon as it is measured (a long run shows its figures)."""
    cpu: dict[str, float] = dict(busy["cpu"])  # type: ignore[call-overload]
    cpu.pop("bench driver", None)
    parts = ", ".join(f"{role} {ms:.2f}" for role, ms in cpu.items())
    print(
        f"{busy['workers']:g} worker(s): {busy['turns_per_s']:.1f} turns/s over {busy['chats']:g} "
        f"chats, CPU {sum(cpu.values()):.1f} ms/turn ({parts}); unloaded p50 "
        f"{light['p50']:.1f} ms (load average {os.getloadavg()[0]:.1f}; "
        f"{busy['resent']:g} requests sent again)",
        flush=True,
    )


def report(
    results: list[tuple[dict[str, float], dict[str, float]]], args: argparse.Namespace
) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"AI engine end to end — Python {platform.python_version()}, {os.cpu_count()} cores "
        f"(load average after the run {load}); instant scripted model; engine concurrency "
        f"{args.concurrency} per worker; every process of the system on this machine"
    )
    print(
        f"\nsaturated: {args.chats} chats x {args.messages} messages in the local web chat, each "
        "chat waiting for the reply before writing again"
    )
    print(f"{'workers':>7} {'turns':>6} {'turns/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for _, r in results:
        print(
            f"{r['workers']:>7} {r['turns']:>6} {r['turns_per_s']:>8.1f} "
            f"{r['p50']:>7.1f} {r['p99']:>7.1f}"
        )
    if len(results) == 2:
        ratio = results[1][1]["turns_per_s"] / results[0][1]["turns_per_s"]
        print(f"{results[1][1]['workers']:g} workers / {results[0][1]['workers']:g}: {ratio:.2f}x")
    print("CPU ms per turn, saturated (every process but the bench driver, then each process):")
    for _, r in results:
        cpu: dict[str, float] = dict(r["cpu"])  # type: ignore[call-overload]
        driver = cpu.pop("bench driver", 0.0)
        parts = ", ".join(f"{role} {ms:.2f}" for role, ms in cpu.items())
        print(
            f"  {r['workers']:g} worker(s): {sum(cpu.values()):.1f} = {parts} "
            f"(bench driver {driver:.1f})"
        )
    print("Valkey commands per turn, saturated (scripts, and the commands inside them):")
    for _, r in results:
        calls: dict[str, float] = r["calls"]  # type: ignore[assignment]
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:14]
        print(f"  {r['workers']:g} worker(s): " + ", ".join(f"{n} {c:.1f}" for n, c in top))
    print(
        f"\nunloaded: 1 chat x {args.unloaded} messages — where a message's time goes "
        "(means in ms; the turn's parts from its chat:turn record)"
    )
    print(
        f"{'workers':>7} {'p50':>6} {'p99':>6} {'latency':>8} {'in+queue':>9} {'fold':>6} "
        f"{'agent':>6} {'(model)':>8} {'send':>6} {'agent framework':>16} {'pipeline':>9}"
    )
    for r, _ in results:
        before = r["latency_mean"] - r["turn_total"]
        share = r["agent"] / r["latency_mean"]
        print(
            f"{r['workers']:>7} {r['p50']:>6.1f} {r['p99']:>6.1f} {r['latency_mean']:>8.1f} "
            f"{before:>9.1f} {r['fold']:>6.1f} {r['agent']:>6.1f} {r['llm']:>8.1f} "
            f"{r['send']:>6.1f} {share:>16.0%} {1 - share:>9.0%}"
        )
    print(
        "in+queue: the inbound request, stream delivery and waiting for a worker; agent: the "
        "agent run (the model call through LangChain, the LangGraph graph only when the model "
        "calls tools; (model) is the instant model's call); send: the reply's POST to the "
        "gateway. agent framework = agent / latency; pipeline = everything else."
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        run_worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--chats", "--persons", type=int, default=100, help="chats writing at once (saturated)"
    )
    parser.add_argument("--messages", type=int, default=5, help="messages per chat (saturated)")
    parser.add_argument("--unloaded", type=int, default=30, help="messages of the lone chat")
    parser.add_argument("--concurrency", type=int, default=8, help="ENGINE_CONCURRENCY")
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="engine worker counts to run, one after the other (e.g. 1 or 1,2)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()

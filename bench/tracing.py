"""What tracing costs: engine turns/s with every span exported over OTLP vs. tracing off.

    .venv/bin/python bench/tracing.py                     # 4 rounds: off, on, off, on
    .venv/bin/python bench/tracing.py --persons 10 --messages 5 --rounds 2

The system of ``bench/engine.py`` (WhatsApp and cron gateways, one engine worker with its MCP
child, an instant scripted model, each a process of its own on one embedded Valkey) is started
once per round: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at an OTLP/HTTP sink (every
process then installs its provider, the ASGI and httpx instrumentation, and exports every span
in batches), or without it (nothing installed). Rounds alternate so that a drift in the
machine's load hits both modes alike. Reported: turns/s and CPU ms per turn of each mode, the
ratio, and the spans exported per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path.pop(0)  # bench/mcp.py would shadow the MCP SDK


def _engine_bench() -> ModuleType:
    """``bench/engine.py``: its process handling, load driver and instant model."""
    spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "bench" / "engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_engine"] = module
    spec.loader.exec_module(module)
    return module


eb = _engine_bench()
eb.ROLES = (("tracing.py worker", "engine worker"), *eb.ROLES)  # this file's worker mode
from bench.stack import running, wait_consumers  # noqa: E402  (importable once eb ran)


class Sink:
    """An OTLP/HTTP endpoint that accepts every export (a collector that keeps up)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> int:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        count = 0
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            count += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return count


async def one_round(args: argparse.Namespace, sink: Sink | None, run: int) -> dict[str, Any]:
    exporting: dict[str, str] = {}
    if sink is not None:
        exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
        exporting["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    # SIGTERM at the end: each process flushes its last batch before exiting
    async with running(args.concurrency, exporting) as stack:
        consumer = f"trace-bench-{run}"
        stack.spawn([sys.executable, "-P", __file__, "worker"], CONSUMER_NAME=consumer)
        await wait_consumers(stack.redis, [consumer], within=300)
        before = len(sink.bodies) if sink else 0
        result: dict[str, Any] = await eb.measure(
            stack.redis, stack.base, 1, args.persons, args.messages, run
        )
        result["exported_requests"] = (len(sink.bodies) - before) if sink else 0
    return result


async def bench(args: argparse.Namespace) -> None:
    sink = Sink()
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    for run in range(args.rounds):
        exporting = run % 2 == 1
        result = await one_round(args, sink if exporting else None, 50 + run)
        (on if exporting else off).append(result)
        cpu = sum(result["cpu"].values())
        print(
            f"round {run + 1}: tracing {'exporting' if exporting else 'off':9} "
            f"{result['turns_per_s']:6.1f} turns/s, p50 {result['p50']:6.1f} ms, "
            f"p99 {result['p99']:6.1f} ms, CPU {cpu:5.1f} ms/turn",
            flush=True,
        )
    total_turns = sum(r["turns"] for r in on) + 8 * 3 * len(on)  # with each round's warm-up
    report(args, off, on, sink.spans() / max(1, total_turns))


def report(
    args: argparse.Namespace, off: list[dict[str, Any]], on: list[dict[str, Any]], spans: float
) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rate_off = median(r["turns_per_s"] for r in off)
    rate_on = median(r["turns_per_s"] for r in on)
    cpu_off = median(sum(r["cpu"].values()) for r in off)
    cpu_on = median(sum(r["cpu"].values()) for r in on)
    print(
        f"\nTracing cost — Python {platform.python_version()}, {os.cpu_count()} cores (load "
        f"average after the run {load}); {args.persons} people x {args.messages} messages, "
        f"1 engine worker, instant scripted model; medians of {len(off)} + {len(on)} rounds"
    )
    print(f"{'tracing':>10} {'turns/s':>8} {'CPU ms/turn':>12}")
    print(f"{'off':>10} {rate_off:>8.1f} {cpu_off:>12.1f}")
    print(f"{'exporting':>10} {rate_on:>8.1f} {cpu_on:>12.1f}")
    print(f"CPU per turn, exporting by process: {_by_role(on)}")
    print(f"CPU per turn, off by process:       {_by_role(off)}")
    print(f"spans exported per turn: {spans:.1f}")
    ratio = rate_on / rate_off
    print(
        f"ratio exporting/off: {ratio:.3f} turns/s (overhead {1 - ratio:+.1%}; goal < 10 %), "
        f"CPU per turn {cpu_on / cpu_off:.3f}x"
    )


def _by_role(results: list[dict[str, Any]]) -> str:
    roles = results[0]["cpu"].keys()
    return ", ".join(
        f"{role} {median(r['cpu'].get(role, 0.0) for r in results):.1f}" for role in roles
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        eb.run_worker(traced=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()

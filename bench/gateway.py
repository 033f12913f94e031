"""Inbound HTTP → event appended: the WhatsApp gateway against a bare Litestar handler.

Both servers run in their own process on the same embedded Valkey (a fresh one in a temporary
directory, AOF on as in production) and take the same request, ``POST /api/local/messages``:
- ``gateway``: the real app (local engine) — validation, chat id normalisation, the envelope,
  OpenTelemetry middleware, the idempotent atomic append to ``whatsapp:messages`` and
  ``chat:{chatId}``, projections and live fan-out;
- ``bare``: one Litestar handler that decodes the same body and XADDs the same fields to the
  same two streams in one MULTI, with no checks at all.
Rounds alternate between the servers so drift on the machine hits all. Prints requests/s,
latency percentiles and server CPU per request of each, and the ratios (goal: gateway >= 0.8
of bare). ``--attribute`` adds gateway variants that show where the difference goes.

    .venv/bin/python bench/gateway.py [--seconds 5] [--rounds 3] [--concurrency 16] [--attribute]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from litestar import Litestar, post  # noqa: E402

from aspri.schemas.api import LocalMessageAccepted, LocalMessageRequest, Success  # noqa: E402
from aspri.streams.server import EmbeddedServer, free_port  # noqa: E402
from bench.cpu import process_cpu  # noqa: E402

SENDERS = 200
API_KEY = "bench-api-key"
"""The gateway's key in this run; every request sends it, as real clients must."""


# ------------------------------------------------------------------ the two servers


VARIANTS = {
    "gateway": "as shipped: tracing on, info logs",
    "gateway-no-asgi-otel": "without the OpenTelemetry ASGI middleware of api/common.py",
    "gateway-lean": "without that middleware, no tracer provider, logs at WARNING",
}


def serve_gateway(redis_url: str, port: int, variant: str) -> None:
    from litestar.plugins import InitPluginProtocol
    from redis.asyncio import Redis

    import aspri.api.common as common
    from aspri.api.whatsapp.app import create_app
    from aspri.api.whatsapp.server import gateway_server
    from aspri.config import Settings
    from aspri.telemetry.logs import setup_logging
    from aspri.telemetry.tracing import setup_tracing

    lean = variant == "gateway-lean"
    setup_logging("aspri-whatsapp", "json", "WARNING" if lean else "INFO")
    if not lean:
        setup_tracing("aspri-whatsapp", force=True)  # spans recorded, exported nowhere
    if variant != "gateway":  # attribution only: the shipped gateway always has it

        class NoTracing(InitPluginProtocol):
            """Takes the tracing plugin's place and does nothing."""

        common.OpenTelemetryPlugin = lambda _config: NoTracing()  # type: ignore[assignment,misc]

    async def main() -> None:
        redis = Redis.from_url(redis_url)
        app = create_app(Settings(redis_url=redis_url, api_key=API_KEY), redis)
        if lean:  # Litestar's default logging config resets the root level
            logging.getLogger().setLevel(logging.WARNING)
        await gateway_server(app, "127.0.0.1", port).serve()
        await redis.aclose()

    asyncio.run(main())


def serve_bare(redis_url: str, port: int) -> None:
    import uuid_utils
    import uvicorn
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    encode = msgspec.json.Encoder().encode

    @post("/api/local/messages", status_code=202)
    async def receive(data: LocalMessageRequest) -> Success[LocalMessageAccepted]:
        chat_id = f"{data.from_.lstrip('+')}@c.us"
        event_id = str(uuid_utils.uuid7())
        now = str(time.time_ns() // 1_000_000)
        payload = {"id": event_id, "chatId": chat_id, "from": chat_id, "body": data.text}
        fields: Any = {
            "eventId": event_id,
            "type": "whatsapp:message",
            "source": "whatsapp",
            "timestamp": now,
            "data": encode(payload),
            "v": "1",
        }
        pipe = redis.pipeline(transaction=True)
        pipe.xadd("whatsapp:messages", fields)
        pipe.xadd(f"chat:{chat_id}", fields)
        await pipe.execute()
        return Success(data=LocalMessageAccepted(event_id=event_id, chat_id=chat_id))

    uvicorn.run(
        Litestar([receive]), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


# ------------------------------------------------------------------ load


async def load(url: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    """Requests answered in ``seconds`` by ``concurrency`` keep-alive connections, and every
    latency (s). A minimal HTTP/1.1 client on asyncio streams: a full client library costs
    more CPU per request than the servers measured here, and this machine has two cores."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        i = 0
        try:
            while time.perf_counter() < deadline:
                sender = f"+6281{(n * 7919 + i) % SENDERS:08d}"
                body = msgspec.json.encode({"from": sender, "text": f"message {i}"})
                head = (
                    f"POST /api/local/messages HTTP/1.1\r\nHost: {host}\r\n"
                    f"X-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                began = time.perf_counter()
                writer.write(head.encode() + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                if b" 202 " not in status_line:
                    raise RuntimeError(f"{url}: {status_line!r}")
                i += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return len(latencies), latencies


def start(kind: str, redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--redis", redis_url, "--port", str(port)],
        env=os.environ | {"LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(
                f"{url}/api/local/messages",
                json={"from": "+15550000000", "text": "warm"},
                headers={"X-API-Key": API_KEY},
            )
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(args: argparse.Namespace) -> None:
    from redis.asyncio import Redis

    kinds = ["bare", "gateway"]
    if args.attribute:
        kinds += ["gateway-no-asgi-otel", "gateway-lean"]
    results: dict[str, list[tuple[float, ...]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp)) as redis_url:
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for kind in kinds:
                servers[kind] = start(kind, redis_url)
            for _proc, url in servers.values():  # warm-up
                await load(url, 1.0, args.concurrency)
            for _ in range(args.rounds):
                for kind, (proc, url) in servers.items():
                    cpu = process_cpu(proc.pid)
                    count, lat = await load(url, args.seconds, args.concurrency)
                    cpu_ms = (process_cpu(proc.pid) - cpu) / count * 1000
                    rate = count / args.seconds
                    results[kind].append((rate, pct(lat, 0.5), pct(lat, 0.99), cpu_ms))
        finally:
            for proc, _ in servers.values():
                stop(proc)
        redis = Redis.from_url(redis_url)
        appended = await redis.xlen("whatsapp:messages")
        await redis.aclose()

    print(
        f"inbound POST /api/local/messages -> XADD, {args.concurrency} concurrent connections, "
        f"{args.rounds} rounds x {args.seconds:g} s each, interleaved (medians)"
    )
    print(f"{'':22} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
    medians: dict[str, tuple[float, float]] = {}
    for kind, rounds in results.items():
        rate, p50, p99, cpu_ms = (statistics.median(r[i] for r in rounds) for i in range(4))
        medians[kind] = (rate, cpu_ms)
        print(f"{kind:22} {rate:7.0f} {p50:8.2f} {p99:8.2f} {cpu_ms:11.2f}")
    bare_rate, bare_cpu = medians["bare"]
    for kind in kinds[1:]:
        rate, cpu_ms = medians[kind]
        print(
            f"ratio {kind}/bare: {rate / bare_rate:.2f} by requests/s, "
            f"{bare_cpu / cpu_ms:.2f} by CPU per request (goal >= 0.80)  [{VARIANTS[kind]}]"
        )
    print(f"events appended to whatsapp:messages (all servers, with warm-up): {appended}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="also run the gateway without the ASGI tracing middleware, and fully lean",
    )
    parser.add_argument("--serve", choices=["bare", *VARIANTS], help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.redis, args.port)
    elif args.serve:
        serve_gateway(args.redis, args.port, args.serve)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()

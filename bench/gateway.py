"""Inbound HTTP → event appended: the WhatsApp gateway against a bare Litestar handler.

Both servers run in their own process on the same embedded Valkey (a fresh one in a temporary
directory, AOF on as in production) and take the same request, ``POST /api/local/messages``:
- ``gateway``: the real app (local engine) — validation, chat id normalisation, the envelope,
  OpenTelemetry middleware, the idempotent atomic append to ``whatsapp:messages`` and
  ``chat:{chatId}``, projections and live fan-out;
- ``bare``: one Litestar handler that decodes the same body and XADDs the same fields to the
  same two streams in one MULTI, with no checks at all.
Rounds alternate between the two so drift on the machine hits both. Prints requests/s and
latency percentiles of each and the ratio (goal: gateway >= 0.8 of bare).

    .venv/bin/python bench/gateway.py [--seconds 5] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
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

SENDERS = 200


# ------------------------------------------------------------------ the two servers


def serve_gateway(redis_url: str, port: int) -> None:
    from redis.asyncio import Redis

    from aspri.api.whatsapp.app import create_app
    from aspri.api.whatsapp.server import gateway_server
    from aspri.config import Settings
    from aspri.telemetry.logs import setup_logging
    from aspri.telemetry.tracing import setup_tracing

    setup_logging("aspri-whatsapp", "json", "INFO")  # as `aspri whatsapp` does
    setup_tracing("aspri-whatsapp")

    async def main() -> None:
        redis = Redis.from_url(redis_url)
        app = create_app(Settings(redis_url=redis_url), redis)
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
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
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
            httpx.post(f"{url}/api/local/messages", json={"from": "+15550000000", "text": "warm"})
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

    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp)) as redis_url:
        results: dict[str, list[tuple[float, float, float]]] = {"gateway": [], "bare": []}
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for kind in results:
                servers[kind] = start(kind, redis_url)
            for _kind, (_, url) in servers.items():  # warm-up
                await load(url, 1.0, args.concurrency)
            for _ in range(args.rounds):
                for kind, (_, url) in servers.items():
                    count, lat = await load(url, args.seconds, args.concurrency)
                    results[kind].append((count / args.seconds, pct(lat, 0.5), pct(lat, 0.99)))
        finally:
            for proc, _ in servers.values():
                stop(proc)
        redis = Redis.from_url(redis_url)
        appended = await redis.xlen("whatsapp:messages")
        await redis.aclose()

    print(
        f"inbound POST /api/local/messages → XADD, {args.concurrency} concurrent clients, "
        f"{args.rounds} rounds x {args.seconds:g} s each (median round shown)"
    )
    print(f"{'':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    medians = {}
    for kind, rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        p50 = statistics.median(r[1] for r in rounds)
        p99 = statistics.median(r[2] for r in rounds)
        medians[kind] = rate
        print(f"{kind:8} {rate:9.0f} {p50:8.2f} {p99:8.2f}")
    print(f"ratio gateway/bare: {medians['gateway'] / medians['bare']:.2f} (goal ≥ 0.80)")
    print(f"events in whatsapp:messages (both servers, incl. warm-up): {appended}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", choices=["gateway", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "gateway":
        serve_gateway(args.redis, args.port)
    elif args.serve == "bare":
        serve_bare(args.redis, args.port)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()

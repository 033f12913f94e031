"""One number sending messages as fast as it can (a separate process in the flood test).

``python -m tests.e2e.flooder <gateway url> <number> <count> <connections>`` (the key in
``ASPRI_API_KEY``); prints
``sent=<n> accepted=<n> throttled=<n> seconds=<s> per_s=<r>`` when done.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx


async def flood(url: str, number: str, count: int, connections: int) -> None:
    todo = iter(range(count))
    outcome = {"accepted": 0, "throttled": 0}

    async def sender(client: httpx.AsyncClient) -> None:
        for n in todo:
            r = await client.post(
                "/api/local/messages", json={"from": number, "text": f"/help {n}"}
            )
            r.raise_for_status()
            outcome["throttled" if r.json()["data"]["throttled"] else "accepted"] += 1

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=connections)
    auth = {"X-API-Key": os.environ["ASPRI_API_KEY"]}
    async with httpx.AsyncClient(base_url=url, headers=auth, limits=limits, timeout=30) as client:
        await asyncio.gather(*(sender(client) for _ in range(connections)))
    seconds = time.perf_counter() - began
    print(
        f"sent={count} accepted={outcome['accepted']} throttled={outcome['throttled']} "
        f"seconds={seconds:.2f} per_s={count / seconds:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    gateway, who, total, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(flood(gateway, who, total, conns))

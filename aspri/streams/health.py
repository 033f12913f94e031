"""Health records (arq's model): a running service proves it works by renewing a key.

An instance writes ``aspri:health:<service>:<name>`` (JSON, ``SET EX ttl``) every third of the
TTL from the same event loop that does its work, and scores its name in the sorted set
``aspri:health:<service>`` with the time of that record. A reader (a gateway's ``/health``, a
compose health check, ``aspri up``) sees an instance as up while its key exists; a killed or
wedged instance's key expires, and the index still says when it was last seen. A clean stop
deletes the key at once. Index entries older than an hour are dropped by the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.schemas.envelope import text
from aspri.streams import keys

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 15.0
FORGET_AFTER_MS = 3_600_000
_ENC = msgspec.json.Encoder()


def _now_ms() -> int:
    return int(time.time() * 1000)


class Beat:
    """The writer: ``async with Beat(redis, "scheduler", name, details=...)`` around the work."""

    def __init__(
        self,
        redis: Redis,
        service: str,
        name: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        details: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.redis = redis
        self.service = service
        self.name = name
        self.ttl_s = ttl_s
        self.details = details
        self.key = keys.health(service, name)
        self.started_at = _now_ms()
        self._task: asyncio.Task[None] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "name": self.name,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "startedAt": self.started_at,
            "at": _now_ms(),
            "ttlMs": int(self.ttl_s * 1000),
            **self.details(),
        }

    async def write(self) -> None:
        record = self.record()
        index = keys.health_index(self.service)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key, _ENC.encode(record), px=record["ttlMs"])
            pipe.zadd(index, {self.name: record["at"]})
            pipe.zremrangebyscore(index, "-inf", record["at"] - FORGET_AFTER_MS)
            await pipe.execute()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            with contextlib.suppress(RedisError, OSError):  # an outage: the record just expires
                await self.write()

    async def __aenter__(self) -> Beat:
        with contextlib.suppress(RedisError, OSError):
            await self.write()
        self._task = asyncio.create_task(self._keep(), name=f"health:{self.service}")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.key)


class Instance(msgspec.Struct, kw_only=True, rename="camel"):
    """What a reader learns about one instance."""

    name: str
    up: bool
    last_seen: int
    """Unix ms of its last record."""
    record: dict[str, Any] = msgspec.field(default_factory=dict)


async def instances(redis: Redis, service: str) -> list[Instance]:
    """Every instance of ``service`` seen within the last hour, newest record first."""
    seen = cast(
        list[tuple[bytes, float]],
        await redis.zrevrange(keys.health_index(service), 0, 99, withscores=True),
    )
    if not seen:
        return []
    names = [text(n) for n, _ in seen]
    raw = await redis.mget([keys.health(service, n) for n in names])
    out = []
    for name, (_, score), body in zip(names, seen, raw, strict=True):
        record: dict[str, Any] = {}
        if body is not None:
            with contextlib.suppress(msgspec.DecodeError):
                record = msgspec.json.decode(body)
        out.append(Instance(name=name, up=body is not None, last_seen=int(score), record=record))
    return out

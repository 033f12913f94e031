"""Event-sourced tables: state = fold(stream), rebuilt on start, kept current by tailing.

A table never writes its own state as the truth; the stream is the truth. A snapshot (state plus
the id of the last entry it covers) only lets a restart replay the tail instead of everything.
Writers that decide on the state use ``catch_up()`` then append with
``expected_last_id=table.last_id``, so a decision made on a stale state is rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from opentelemetry import trace
from redis.asyncio import Redis

from aspri.schemas import Event, UndecodableEvent
from aspri.schemas.envelope import text
from aspri.streams import ids, keys
from aspri.streams.log import EventLog, Range
from aspri.streams.supervise import supervise

S = TypeVar("S")
log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aspri.streams")


def _as_is(response: Any, **_options: Any) -> Any:
    return response


class Table(Generic[S]):
    """The fold of one stream, applied in place by ``apply(state, event)``."""

    def __init__(
        self,
        log_: EventLog,
        stream: str,
        *,
        initial: Callable[[], S],
        apply: Callable[[S, Event[Any]], None],
        state_type: type[S] | Any = None,
        name: str | None = None,
        snapshot_every: int | None = None,
        batch: int = 1_000,
    ) -> None:
        self.log = log_
        self.stream = stream
        self.name = name or stream
        self.initial = initial
        self.apply = apply
        self.state_type = state_type
        self.snapshot_every = snapshot_every
        self.batch = batch
        self.state: S = initial()
        self.last_id = "0-0"
        self.applied = 0
        self.replayed = 0
        self.skipped = 0
        self.changed = asyncio.Event()
        """Set whenever an event was applied; the owner clears it when it has reacted."""
        self._lock = asyncio.Lock()
        self._since_snapshot = 0
        self._tail: asyncio.Task[None] | None = None
        # Same pool, but XRANGE replies stay flat lists: redis-py's per-entry tuple-and-dict
        # conversion was a large share of replay time; we build each dict once, in C.
        self._raw = Redis(connection_pool=log_.redis.connection_pool)
        self._raw.set_response_callback("XRANGE", _as_is)
        self._following = False
        self._block_ms = 1_000

    async def start(self, *, tail: bool = True) -> None:
        """Load the snapshot if any, replay what came after it, then follow the stream."""
        with _tracer.start_as_current_span(f"{self.name} replay") as span:
            began = time.perf_counter()
            await self._load_snapshot()
            self.replayed = await self.catch_up()
            span.set_attribute("aspri.replayed", self.replayed)
            log.info(
                "table rebuilt",
                extra={
                    "table": self.name,
                    "replayed": self.replayed,
                    "seconds": round(time.perf_counter() - began, 3),
                },
            )
        if tail:
            self._following = True
            self._tail = asyncio.create_task(
                supervise(f"table:{self.name}", self._follow), name=f"table:{self.name}"
            )

    async def stop(self) -> None:
        """Stop following. The tail also checks a flag: redis-py 8 can swallow a cancel that
        lands mid-command, so cancelling alone could leave the task running."""
        self._following = False
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._tail, self._block_ms / 1000 + 1)
            self._tail = None

    async def catch_up(self) -> int:
        """Apply every entry up to the stream's current end; returns how many were applied."""
        async with self._lock:
            count = 0
            while True:
                raw = await self._raw.xrange(self.stream, f"({self.last_id}", "+", count=self.batch)
                if not raw:
                    break
                count += self._apply_raw(raw)
                if len(raw) < self.batch:
                    break
        if self.snapshot_every and self._since_snapshot >= self.snapshot_every:
            await self.save_snapshot()
        return count

    def next_range(self) -> Range:
        """The read ``catch_up`` would do next: for a caller that reads it with others in one
        round trip (``EventLog.ranges``) and hands the reply to ``absorb``."""
        return Range(self.stream, f"({self.last_id}", "+", self.batch)

    async def absorb(self, raw: list[Any]) -> None:
        """Apply the reply of ``next_range`` (what another catch-up applied meanwhile is
        skipped); a full batch may have more behind it, so the rest is caught up."""
        async with self._lock:
            fresh = [entry for entry in raw if ids.after(text(entry[0]), self.last_id)]
            if fresh:
                self._apply_raw(fresh)
        if len(raw) >= self.batch:
            await self.catch_up()
        elif self.snapshot_every and self._since_snapshot >= self.snapshot_every:
            await self.save_snapshot()

    async def wait_for(self, entry_id: str) -> None:
        """Return once the entry ``entry_id`` is applied (read-your-writes for a writer)."""
        if not ids.after(entry_id, self.last_id):
            return
        await self.catch_up()

    async def save_snapshot(self) -> None:
        async with self._lock:
            body = msgspec.json.encode(self.state)
            await self.log.redis.hset(
                keys.snapshot(self.name), mapping={"state": body, "id": self.last_id}
            )
            self._since_snapshot = 0

    async def _load_snapshot(self) -> None:
        if self.state_type is None:
            return
        raw = await self.log.redis.hgetall(keys.snapshot(self.name))
        if not raw:
            return
        fields = {text(k): v for k, v in raw.items()}
        try:
            self.state = msgspec.json.decode(fields["state"], type=self.state_type)
            self.last_id = text(fields["id"])
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning(
                "snapshot unusable, replaying from the start",
                extra={"table": self.name, "error": str(exc)},
            )
            self.state, self.last_id = self.initial(), "0-0"

    def _apply_raw(self, raw: list[Any]) -> int:
        registry = self.log.registry
        for entry_id, flat in raw:
            eid = text(entry_id)
            pairs = iter(flat)
            fields = dict(zip(pairs, pairs, strict=False))
            try:
                event = registry.from_fields(fields, entry_id=eid, stream=self.stream)
            except UndecodableEvent as exc:
                self.skipped += 1
                log.warning(
                    "undecodable entry skipped",
                    extra={"table": self.name, "entry": eid, "reason": exc.reason},
                )
            else:
                self.apply(self.state, event)
            self.last_id = eid
        self.applied += len(raw)
        self._since_snapshot += len(raw)
        self.changed.set()
        return len(raw)

    async def _follow(self) -> None:
        """Tail the stream; a lost connection ends this call and the supervisor starts it
        again after a backoff, from ``last_id``, so nothing is skipped."""
        while self._following:
            await self.log.redis.xread({self.stream: self.last_id}, count=1, block=self._block_ms)
            await self.catch_up()

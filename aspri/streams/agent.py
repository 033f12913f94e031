"""One agent of a StreamApp: a reader feeding N workers that each run the agent's function.

Delivery is at-least-once and the ack policy explicit: an entry is acked only when the agent's
``async for`` asks for the next event, i.e. after the handler body finished. A body that raises
restarts the function; the entry is re-claimed (its delivery count goes up) after a backoff and
handed to the function again, and after ``max_deliveries`` it moves to ``<stream>:dlq``.
Entries with the same key run in stream order, one at a time across every consumer of the group:
each key has a queue of entry ids filled atomically at read time and a lease with a fencing token
(see ``ordering``). Acks are flushed in batches: one XACK, or one script for keyed entries,
which while the reader is busy goes in the same MULTI as its next read: one round trip per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay

from aspri.schemas import Event, Registry, UndecodableEvent
from aspri.schemas.envelope import fields_as_text, text
from aspri.streams import keys, scripts
from aspri.streams.iterator import EventStream
from aspri.streams.ordering import KeyOrder
from aspri.streams.spec import AgentSpec, Delivery, HandlerTimeout, Permanent, dead_letter_fields
from aspri.streams.supervise import BACKOFF, TRANSIENT, supervise

log = logging.getLogger(__name__)
_json = msgspec.json.encode

READER_GRACE_S = 0.005
"""How long keyed finishes wait for the reader's next read before the acker sends them."""


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` at ``0`` (the stream too, if missing); one that exists
    already is kept as it is."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Baton:
    """Who sends the finishes now. The reader takes it only when it is free and never waits
    for it: a read queued behind the acker would leave the workers without entries."""

    def __init__(self) -> None:
        self.held = False
        self._free = asyncio.Event()
        self._free.set()

    def take(self) -> bool:
        if self.held:
            return False
        self.held = True
        self._free.clear()
        return True

    def give(self) -> None:
        self.held = False
        self._free.set()

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """Hold the baton, waiting for it if needed."""
        while not self.take():
            await self._free.wait()
        try:
            yield
        finally:
            self.give()


class AgentRunner:
    """Runs one AgentSpec for one consumer name: the reader, the workers, the heartbeat."""

    def __init__(
        self, spec: AgentSpec, redis: Redis, registry: Registry, consumer: str, *, burst: bool
    ) -> None:
        self.spec = spec
        self.redis = redis
        self.registry = registry
        self.consumer = consumer
        self.burst = burst
        self._ready: asyncio.Queue[Delivery | None] = asyncio.Queue()
        # Held unacked at most. A keyed read costs the server more (the queueing script, and the
        # finishes riding with it), so a keyed reader reads further ahead: the workers then have
        # entries in hand while a read is on its way.
        self._room = max(spec.batch, spec.concurrency) * (4 if spec.key else 2)
        self._room_freed = asyncio.Event()
        self._held: dict[str, Delivery] = {}
        self._stopping = asyncio.Event()
        self._progress = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._renew = redis.register_script(scripts.RENEW)
        self._keep = redis.register_script(scripts.HEARTBEAT)
        self._finish = redis.register_script(scripts.FINISH)
        self._acks: list[str] = []
        self._keyed: list[tuple[Delivery, list[str]]] = []  # finished, with dead-letter fields
        self._flushing = Baton()
        self._ack_wakeup = asyncio.Event()
        self._reading = False
        """The reader reads again soon (it is not blocked on the stream): keyed finishes go
        to the server with its next read, one round trip for both."""
        self._read_done = asyncio.Event()
        self._ahead: asyncio.Future[list[Any]] | None = None
        """The keyed read sent before the entries of the last one were handed over."""
        self._order = KeyOrder(
            spec,
            redis,
            consumer,
            self._ready,
            self._abandon,
            lambda: self._stopping.is_set() and not self.burst,
        )
        self.processed = 0
        self.beats = 0
        self.fenced = 0

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Run until ``stop()`` (or, in burst mode, until the stream has nothing left)."""
        await ensure_group(self.redis, self.spec.stream, self.spec.group)
        name = self.spec.name
        workers = [
            asyncio.create_task(self._worker(), name=f"{name}#{i}")
            for i in range(self.spec.concurrency)
        ]
        helpers = [
            asyncio.create_task(supervise(f"{name}:acker", self._acker), name=f"{name}:acker"),
            asyncio.create_task(
                supervise(f"{name}:heartbeat", self._heartbeat), name=f"{name}:heartbeat"
            ),
        ]
        if self.spec.key is not None:
            helpers.append(
                asyncio.create_task(
                    supervise(f"{name}:wake", self._order.listen), name=f"{name}:wake"
                )
            )
        self._reader_task = asyncio.create_task(
            supervise(f"{name}:reader", self._consume, retry_on=TRANSIENT), name=f"{name}:reader"
        )
        try:
            try:
                await self._reader_task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled, not just stopped: do not swallow it
            for _ in workers:
                self._ready.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for task in [*workers, *self._order.gates]:
                task.cancel()
            self._stopping.set()
            self._ack_wakeup.set()
            await asyncio.gather(*workers, *self._order.gates, return_exceptions=True)
            for task in helpers[1:]:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._final_flush()

    def stop(self) -> None:
        """Stop reading; workers finish the event in hand and leave queued ones pending."""
        self._stopping.set()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _consume(self) -> None:
        """The reader, with the one failure it can repair itself: its group was deleted."""
        while True:
            try:
                await self._reader()
                return
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.error(
                    "consumer group is gone; recreating it at 0 (unacked entries are read again)",
                    extra={"agent": self.spec.name, "error": str(exc)},
                )
                await ensure_group(self.redis, self.spec.stream, self.spec.group)

    # ---------------------------------------------------------------- reading

    async def _reader(self) -> None:
        """Own pending entries first, then entries of dead consumers and new ones."""
        try:
            await self._read_loop()
        finally:
            ahead, self._ahead = self._ahead, None
            if ahead is not None:  # its entries stay pending for this consumer: read again later
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, *TRANSIENT, ResponseError):
                    await ahead
            self._set_reading(False)

    def _set_reading(self, reading: bool) -> None:
        self._reading = reading
        if not reading:
            self._read_done.set()

    async def _read_loop(self) -> None:
        await self._dispatch_pending()
        next_claim = 0.0
        task = asyncio.current_task()
        while not self._stopping.is_set():
            if task is not None and task.cancelling():  # redis-py may swallow a cancel
                raise asyncio.CancelledError
            now = time.monotonic()
            claimed = 0
            if now >= next_claim:
                claimed = await self._autoclaim()
                next_claim = now + self.spec.claim_idle_ms / 2000
            block = (
                None
                if self.burst
                else min(self.spec.block_ms, max(1, int((next_claim - now) * 1000)))
            )
            self._set_reading(self.spec.key is not None)
            got = await self._read_new(block)
            if self.burst and not got and not claimed:
                if await self._drained():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), 0.5)
                self._progress.clear()

    async def _drained(self) -> bool:
        """Burst mode: nothing queued, nothing in flight, nothing new in the stream."""
        if self._held:
            return False
        info = await self.redis.xinfo_groups(self.spec.stream)
        for group in info:
            if text(group["name"]) == self.spec.group:
                return int(group.get("lag") or 0) == 0
        return True

    async def _read_new(self, block: int | None) -> int:
        spec = self.spec
        if spec.key is None:
            reply: Any = await self.redis.xreadgroup(
                spec.group, self.consumer, {spec.stream: ">"}, count=spec.batch, block=block
            )
            entries = reply[0][1] if reply else []
            for entry_id, raw in entries:
                if len(self._held) >= self._room:
                    await self._make_room()
                self._hold(Delivery(text(entry_id), raw, "", 1))
            return len(entries)
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            while len(self._held) + spec.batch > self._room:  # room for a whole read
                self._room_freed.clear()
                await self._room_freed.wait()
            ahead = asyncio.ensure_future(self._send_read(spec.key))
        queued, reply = await ahead
        for result in (reply, queued):  # XREADGROUP's error first: it names a missing group
            if isinstance(result, Exception):
                raise result
        if len(queued) == 1:
            if block is not None:  # nothing new: sleep on the stream until something arrives
                self._set_reading(False)
                await self.redis.xread({spec.stream: text(queued[0])}, count=1, block=block)
            return 0
        entries = reply[0][1] if reply else []
        if len(entries) * 2 + 1 != len(queued):  # one atomic step: cannot differ
            raise RuntimeError("the keyed read and its queueing disagree")
        held, room = self._held, self._room
        if len(entries) == spec.batch and len(held) + 2 * spec.batch <= room:
            # Likely more to read: send the next read now, so that the server works on it while
            # these entries are handed over and handled here.
            self._ahead = asyncio.ensure_future(self._send_read(spec.key))
            await asyncio.sleep(0)
        s = bytes.decode if isinstance(queued[0], bytes) else str  # decode_responses or not
        token = s(queued[0])
        for i, (entry_id, fields) in enumerate(entries, 1):
            res = queued[2 * i]
            if res == 1:
                d = Delivery(s(entry_id), fields, s(queued[2 * i - 1]), 1, prev="", grant=token)
            elif res == 0:
                d = Delivery(s(entry_id), fields, s(queued[2 * i - 1]), 1, prev="")
            else:
                d = Delivery(s(entry_id), fields, s(queued[2 * i - 1]), 1, prev=s(res))
            if len(held) >= room:
                await self._make_room()
            self._hold(d)
        return len(entries)

    async def _send_read(self, key: str) -> list[Any]:
        """One keyed read, with the finishes waiting when nobody else is sending them."""
        try:
            if not self._flushing.take():  # the acker is sending finishes: read without them
                return await self._read_keyed(key, [])
            try:
                return await self._read_keyed(key, self._keyed[: self.spec.batch * 10])
            finally:
                self._flushing.give()
        finally:
            self._read_done.set()

    async def _read_keyed(self, key: str, finishing: list[tuple[Delivery, list[str]]]) -> list[Any]:
        """One MULTI: the ``finishing`` entries' finish script, the queueing script of entries
        keyed by ``key``, XREADGROUP. Returns the last two replies; a failed finish is left for
        the acker to retry."""
        spec = self.spec
        async with self.redis.pipeline(transaction=True) as pipe:
            if finishing:
                sent, names, args = self._finish_args(finishing)
                pipe.eval(scripts.FINISH, len(names), *names, *args)
            pipe.eval(
                scripts.READ_KEYED,
                2,
                spec.stream,
                keys.lease_counter(spec.stream, spec.group),
                spec.group,
                self.consumer,
                spec.batch,
                key,
                keys.key_queue(spec.stream, spec.group, ""),
                keys.lease(spec.stream, spec.group, ""),
                spec.lease_ms,
            )
            pipe.xreadgroup(spec.group, self.consumer, {spec.stream: ">"}, count=spec.batch)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        if finishing:
            statuses = results.pop(0)
            if isinstance(statuses, Exception):
                log.warning(
                    "finish failed; retrying", extra={"agent": spec.name, "error": str(statuses)}
                )
            else:
                self._finished(finishing, sent, statuses)
        return results

    async def _dispatch_pending(self) -> None:
        """Re-deliver what this consumer had read but not acked before it stopped."""
        cursor = "0"
        while True:
            reply: Any = await self.redis.xreadgroup(
                self.spec.group, self.consumer, {self.spec.stream: cursor}, count=self.spec.batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._dispatch_known(entries)
            cursor = text(entries[-1][0])

    async def _autoclaim(self) -> int:
        """Take over entries idle longer than ``claim_idle_ms`` (their consumer is gone)."""
        spec = self.spec
        total = 0
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                spec.stream, spec.group, self.consumer, spec.claim_idle_ms, start, count=spec.batch
            )
            start, entries = text(reply[0]), [e for e in reply[1] if e[1] is not None]
            if len(reply) > 2 and reply[2]:  # entries deleted from the stream: nothing to do
                await self.redis.xack(spec.stream, spec.group, *reply[2])
            total += await self._dispatch_known(entries)
            if start == "0-0" or not entries:
                return total

    async def _dispatch_known(self, entries: list[Any]) -> int:
        """Dispatch already-delivered entries this consumer does not hold yet, with their
        delivery counts and keys; returns how many."""
        entries = [e for e in entries if text(e[0]) not in self._held]
        if not entries:
            return 0
        spec = self.spec
        first, last = text(entries[0][0]), text(entries[-1][0])
        pending = await self.redis.xpending_range(
            spec.stream, spec.group, min=first, max=last, count=len(entries) * 2 + 10
        )
        counts = {text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        for entry_id, raw in entries:
            eid = text(entry_id)
            key = self._key_of(fields_as_text(raw))
            if len(self._held) >= self._room:
                await self._make_room()
            self._hold(Delivery(eid, raw, key, counts.get(eid, 1)))
        return len(entries)

    def _key_of(self, fields: dict[str, str]) -> str:
        if self.spec.key is None:
            return ""
        tagged = fields.get(f"key:{self.spec.key}")
        if tagged:
            return tagged
        try:
            value = msgspec.json.decode(fields.get("data", "{}")).get(self.spec.key)
        except (msgspec.DecodeError, AttributeError):
            return ""
        return "" if value is None else str(value)

    async def _make_room(self) -> None:
        """Wait until this consumer holds fewer unacked entries than it may."""
        while len(self._held) >= self._room:
            self._room_freed.clear()
            await self._room_freed.wait()

    def _hold(self, d: Delivery) -> None:
        """Hand an entry to the workers: directly, or behind the earlier entries of its key.
        The caller made room for it (``_make_room``); plain calls, nothing awaited per entry."""
        self._held[d.entry_id] = d
        if d.key:
            self._order.add(d)
        else:
            self._ready.put_nowait(d)

    def _release(self, d: Delivery) -> None:
        if self._held.pop(d.entry_id, None) is not None:
            self._room_freed.set()

    def _abandon(self, d: Delivery) -> None:
        """``d`` stays pending, unfinished here: delivered again once it looks idle."""
        self._release(d)
        if d.key:
            self._order.abandoned(d)

    # ---------------------------------------------------------------- working

    async def _worker(self) -> None:
        retry: Delivery | None = None
        while True:
            deadline = asyncio.timeout(None)  # armed by the iterator while a handler runs
            events = EventStream(self, self._ready, retry, deadline)
            try:
                try:
                    async with deadline:
                        await self.spec.fn(events)
                finally:
                    events.stop_watch()
                return
            except asyncio.CancelledError:
                events.close_span(None)
                raise
            except Exception as exc:
                failed = events.current
                if isinstance(exc, TimeoutError) and deadline.expired():
                    exc = HandlerTimeout(f"handler ran longer than {self.spec.timeout_s:g} s")
                events.close_span(exc)
                if failed is None:
                    log.exception("agent %s failed outside a handler", self.spec.name)
                    retry = None
                    continue
                failed.deadline = None
                retry = await self._failed(failed, exc)

    async def _failed(self, d: Delivery, exc: Exception) -> Delivery | None:
        """Back off and re-claim a failed entry, or dead-letter it when it failed too often."""
        reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "handler failed",
            extra={
                "agent": self.spec.name,
                "entry": d.entry_id,
                "deliveries": d.deliveries,
                "error": reason,
            },
        )
        if isinstance(exc, Permanent) or d.deliveries >= self.spec.max_deliveries:
            await self._finish_entry(d, dead_letter=reason)
            return None
        await asyncio.sleep(self.spec.retry_backoff_s * 2 ** (d.deliveries - 1))
        try:
            claimed = await self.redis.xclaim(
                self.spec.stream, self.spec.group, self.consumer, 0, [d.entry_id]
            )
        except RedisError as exc:  # left pending and no longer held: taken over when idle
            log.warning("retry claim failed", extra={"entry": d.entry_id, "error": str(exc)})
            self._abandon(d)
            return None
        if not claimed or claimed[0][1] is None:  # acked elsewhere or trimmed away
            self._abandon(d)
            return None
        d.deliveries += 1
        return d

    async def finish(self, d: Delivery) -> None:
        await self._finish_entry(d, dead_letter=None)

    async def _finish_entry(self, d: Delivery, *, dead_letter: str | None) -> None:
        """Queue the ack of ``d`` for the next flush and let its key's next entry start."""
        self.processed += 1
        self._progress.set()
        self._release(d)
        if d.key:
            dead = [] if dead_letter is None else self._dead_letter(d, dead_letter)
            self._keyed.append((d, dead))
            self._order.finished(d)
        elif dead_letter is None:
            self._acks.append(d.entry_id)
        else:
            await self._dead_letter_now(d, self._dead_letter(d, dead_letter))
        self._ack_wakeup.set()

    def _dead_letter(self, d: Delivery, reason: str) -> list[str]:
        log.error(
            "moving to dead-letter stream",
            extra={"agent": self.spec.name, "entry": d.entry_id, "reason": reason},
        )
        return dead_letter_fields(d, reason, self.spec, self.consumer)

    async def _dead_letter_now(self, d: Delivery, fields: list[str]) -> None:
        """An entry without a key: copied to the DLQ and acked in one transaction."""
        spec = self.spec
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT), wait=BACKOFF, before_sleep=self._retrying
        ):
            with attempt:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.execute_command("XADD", keys.dlq(spec.stream), "*", *fields)
                    pipe.xack(spec.stream, spec.group, d.entry_id)
                    await pipe.execute()

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("finish failed; retrying", extra={"agent": self.spec.name, "error": str(error)})

    async def _acker(self) -> None:
        while not self._stopping.is_set():
            await self._flush_acks()  # first: a restarted acker retries what failed
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            await self._leave_to_reader()

    async def _leave_to_reader(self) -> None:
        """While the reader keeps reading, keyed finishes go with its reads; the acker flushes
        them only once it stops (blocks on the stream, fails) or has not read for a while."""
        while self._keyed and self._reading and not self._acks:
            self._read_done.clear()
            try:
                async with asyncio.timeout(READER_GRACE_S):
                    await self._read_done.wait()
            except TimeoutError:
                return

    async def _flush_acks(self) -> None:
        """Ack what finished; an entry leaves the lists only once the server has acked it, so a
        failed XACK (raised to the acker's supervisor, retried after a backoff) loses nothing."""
        async with self._flushing.waiting():
            while self._acks:
                ids = self._acks[: self.spec.batch * 10]
                await self.redis.xack(self.spec.stream, self.spec.group, *ids)
                del self._acks[: len(ids)]  # others only append meanwhile
            while self._keyed:
                batch = self._keyed[: self.spec.batch * 10]
                sent, names, args = self._finish_args(batch)
                self._finished(batch, sent, await self._finish(keys=names, args=args))

    def _finish_args(
        self, batch: list[tuple[Delivery, list[str]]]
    ) -> tuple[list[tuple[str, str, str, list[str]]], list[str], list[Any]]:
        """The groups (by key and lease), keys and arguments of ``scripts.FINISH`` for a batch
        of keyed finishes."""
        spec = self.spec
        groups: dict[tuple[str, str], list[str]] = {}
        dead: dict[str, list[str]] = {}
        for d, fields in batch:
            groups.setdefault((d.key, d.lease), []).append(d.entry_id)
            if fields:
                dead[d.entry_id] = fields
        stopping = self._stopping.is_set() and not self.burst  # hand every key over
        order = self._order
        sent = [
            (key, lease, "" if stopping else order.next_id(key), entries)
            for (key, lease), entries in groups.items()
        ]
        args = [
            spec.group,
            keys.wake_channel(spec.stream, spec.group),
            spec.lease_ms,
            keys.key_queue(spec.stream, spec.group, ""),
            keys.lease(spec.stream, spec.group, ""),
            _json(sent),
            _json(dead),
            self.consumer,
        ]
        return sent, [spec.stream, keys.dlq(spec.stream)], args

    def _finished(
        self,
        batch: list[tuple[Delivery, list[str]]],
        sent: list[tuple[str, str, str, list[str]]],
        statuses: list[bytes | str],
    ) -> None:
        """The server finished ``batch``: drop it from the queue and tell each key its fate."""
        del self._keyed[: len(batch)]  # others only append meanwhile
        order = self._order
        for (key, lease, next_id, entries), status in zip(sent, statuses, strict=True):
            status = text(status)
            if status == "fenced":
                self.fenced += len(entries)
            order.flushed(key, status, lease, len(entries), next_id)

    async def _final_flush(self) -> None:
        """On the way out: keep trying for a while; what stays unacked is redelivered."""
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TRANSIENT),
                wait=BACKOFF,
                stop=stop_after_delay(self.spec.block_ms / 1000 + 3),
                reraise=True,
            ):
                with attempt:
                    await self._flush_acks()
        except TRANSIENT as exc:
            log.error(
                "acks not flushed on stop; those entries will be delivered again",
                extra={"agent": self.spec.name, "entries": len(self._acks), "error": str(exc)},
            )

    async def _heartbeat(self) -> None:
        """Keep held entries from looking idle and in-flight leases from expiring, except
        those of a handler past its deadline: a hung handler must not hold its key forever."""
        interval = min(self.spec.claim_idle_ms, self.spec.lease_ms) / 3000
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
                return
            self.beats += 1
            now = loop.time()
            self._order.forget_idle(now - interval)
            held = [d for d in self._held.values() if d.deadline is None or d.deadline > now]
            if held:
                lost = await self._keep(
                    keys=[self.spec.stream],
                    args=[self.spec.group, self.consumer, *(d.entry_id for d in held)],
                )
                self._lost([text(entry_id) for entry_id in lost])
            leased = [
                (key, lease)
                for key, lease, first in self._order.leases()
                if first.deadline is None or first.deadline > now
            ]
            if leased:
                await self._renew(
                    keys=[keys.lease(self.spec.stream, self.spec.group, k) for k, _ in leased],
                    args=[self.spec.lease_ms, *(lease for _, lease in leased)],
                )

    def _lost(self, entry_ids: list[str]) -> None:
        """Entries taken over by another consumer while waiting here are not started here."""
        for entry_id in entry_ids:
            d = self._held.get(entry_id)
            if d is not None and d.key and self._order.lost(d):
                self._release(d)
                log.info(
                    "entry taken over by another consumer; dropped",
                    extra={"agent": self.spec.name, "entry": entry_id},
                )

    def decode(self, d: Delivery) -> Event[Any]:
        event = self.registry.from_fields(
            d.fields, entry_id=d.entry_id, stream=self.spec.stream, deliveries=d.deliveries
        )
        if self.spec.schema and not isinstance(event.data, self.spec.schema):
            raise UndecodableEvent(
                f"unexpected event type {event.type!r} for this agent", fields_as_text(d.fields)
            )
        return event

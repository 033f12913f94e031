"""Per-key order across every consumer of a group.

Each key has a queue of entry ids in Redis, filled in the same Lua step that reads the entries
(``scripts.READ_KEYED``), and a lease with a fencing token. Locally, one gate task per key
releases that key's entries to the workers one at a time, after ``scripts.BEGIN`` says the entry
heads its queue and the lease is ours. Waiting happens in the gate, never in a worker, so a key
held by another consumer does not block other keys; wake-ups arrive on one pub/sub channel.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis

from aspri.schemas.envelope import text
from aspri.streams import ids, keys, scripts
from aspri.streams.spec import AgentSpec, Delivery
from aspri.streams.supervise import supervise

log = logging.getLogger(__name__)


class KeyOrder:
    """The gates of one runner; ``add`` an entry, take started ones from ``ready``."""

    def __init__(
        self,
        spec: AgentSpec,
        redis: Redis,
        consumer: str,
        ready: asyncio.Queue[Delivery | None],
        release: Callable[[Delivery], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.spec = spec
        self.redis = redis
        self.consumer = consumer
        self.ready = ready
        self.release = release
        self.stopping = stopping
        self._chains: dict[str, deque[Delivery]] = {}
        self.gates: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, asyncio.Event] = {}
        self._calls = asyncio.Semaphore(16)  # gates share the connection pool with everyone else
        self._begin = redis.register_script(scripts.BEGIN)
        self._drop_stale = redis.register_script(scripts.DROP_STALE_HEAD)

    def add(self, d: Delivery) -> None:
        """Queue ``d`` behind the entries of its key this consumer holds, in stream order."""
        chain = self._chains.get(d.key)
        if chain is not None:
            at = bisect.bisect([ids.parse(c.entry_id) for c in chain], ids.parse(d.entry_id))
            chain.insert(at, d)
            if at == 0:  # the gate waits on the old head: let it look again
                self._waiters.get(chain[1].entry_id, asyncio.Event()).set()
            return
        self._chains[d.key] = deque([d])
        gate = asyncio.create_task(self._gate(d.key), name=f"{self.spec.name}:gate")
        self.gates.add(gate)
        gate.add_done_callback(self.gates.discard)

    async def _gate(self, key: str) -> None:
        """Release the entries of one key to the workers one at a time, in stream order.

        Waiting happens here, not in a worker, so a key held elsewhere never blocks other keys.
        A gate must outlive a lost connection, or its key stalls: it is supervised.
        """
        chain = self._chains[key]

        async def run() -> None:
            while chain:
                d = chain[0]  # re-read: an older entry taken over from a dead consumer goes first
                started = await self._try_begin(d)
                if started:
                    self.ready.put_nowait(d)
                    await d.done.wait()
                if started is not None:
                    chain.remove(d)
                elif self.stopping():
                    return

        try:
            await supervise(f"{self.spec.name}:gate", run)
        finally:
            del self._chains[key]

    async def _try_begin(self, d: Delivery) -> bool | None:
        """One attempt to start ``d``: True (lease taken), False (taken over: skip it) or None
        (an earlier entry of its key, or another consumer's lease, is in the way: wait)."""
        spec = self.spec
        kq = keys.key_queue(spec.stream, spec.group, d.key)
        # Listen before asking: a wake-up published while the script runs must not be lost.
        self._waiters[d.entry_id] = asyncio.Event()
        async with self._calls:
            status, value, ttl = await self._begin(
                keys=[
                    kq,
                    keys.lease(spec.stream, spec.group, d.key),
                    keys.lease_counter(spec.stream, spec.group),
                    spec.stream,
                ],
                args=[d.entry_id, self.consumer, spec.lease_ms, spec.group],
            )
        status, value = text(status), text(value)
        if status == "ok":
            self._waiters.pop(d.entry_id, None)
            d.lease = value
            return True
        if status == "gone":
            self._waiters.pop(d.entry_id, None)
            self.release(d)
            log.info(
                "entry taken over by another consumer; skipped",
                extra={"agent": spec.name, "entry": d.entry_id},
            )
            return False
        if status == "wait":  # an earlier entry of this key is held by another consumer
            if not await self._wait_wake(d.entry_id, 1.0):
                async with self._calls:
                    await self._drop_stale(keys=[kq, spec.stream], args=[value, spec.group])
        else:  # another consumer holds the key's lease: wait for its release or expiry
            await self._wait_wake(d.entry_id, max(0.05, min(1.0, int(ttl) / 1000)))
        return None

    async def _wait_wake(self, entry_id: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until ``entry_id`` is announced as its key's next entry, or ``timeout``."""
        event = self._waiters.setdefault(entry_id, asyncio.Event())  # set up by _try_begin
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(entry_id, None)

    async def listen(self) -> None:
        """One subscription per runner carries every cross-consumer wake-up.

        Supervised: when the subscription fails it is made again, and every waiting gate looks
        again at once, since a wake-up published while nobody listened is lost.
        """
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.wake_channel(self.spec.stream, self.spec.group))
            for waiting in list(self._waiters.values()):
                waiting.set()
            async for message in pubsub.listen():
                waiter = self._waiters.get(text(message["data"]))
                if waiter is not None:
                    waiter.set()
            raise ConnectionError("the wake-up subscription ended")
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

"""Per-key order across every consumer of a group.

Each key has a queue of entry ids in Redis, in stream order, and a lease with a fencing token.
A keyed read is one MULTI: the read script (``scripts.READ_KEYED``) queues the entries that the
XREADGROUP right after it delivers, so nothing runs between the two, and says for each which
entry was queued just before it (``prev``); when the entry heads its queue and the key is free,
it also takes the key's lease for this consumer (``grant``).

Locally an entry starts when this consumer holds its key's lease and the entry before it is one
this consumer has finished (or it heads the queue): a key's consecutive entries run one after
another under one lease, without a round trip. Finishes are flushed in batches
(``scripts.FINISH``, in the same MULTI as the next read while the reader is busy), which keeps
the lease when the key's next entry is this consumer's next one, and otherwise releases it and
publishes that entry's id: a wake-up only on a hand-over.
Only an entry that follows another consumer's, was taken over, or lost its lease waits, in a
gate task of its key, for that wake-up, and takes the lease with ``scripts.TAKE``; waiting
happens there, never in a worker, so a key held elsewhere does not block other keys.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from aspri.schemas.envelope import text
from aspri.streams import ids, keys, scripts
from aspri.streams.spec import AgentSpec, Delivery
from aspri.streams.supervise import supervise

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class KeyState:
    """What this consumer knows of one key: its entries here, its lease, what it finished."""

    key: str
    chain: list[Delivery] = field(default_factory=list)
    """Our entries of the key not finished yet, in stream order; the first may be running."""
    lease: str = ""
    running: bool = False
    done: set[str] = field(default_factory=set)
    """Entries of the key this consumer finished (flushed or not) while it knew the key."""
    unflushed: int = 0
    gate: asyncio.Task[None] | None = None
    idle_since: float | None = None
    """When the key last had nothing to do here while its lease was kept (loop time)."""

    def may_start(self, d: Delivery) -> bool:
        if not self.lease:
            return False
        return d.confirmed or d.prev == "" or (d.prev is not None and d.prev in self.done)


class KeyOrder:
    """The keys of one runner: ``add`` an entry, take started ones from ``ready``."""

    def __init__(
        self,
        spec: AgentSpec,
        redis: Redis,
        consumer: str,
        ready: asyncio.Queue[Delivery | None],
        drop: Callable[[Delivery], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.spec = spec
        self.redis = redis
        self.consumer = consumer
        self.ready = ready
        self.drop = drop
        self.stopping = stopping
        self.keys: dict[str, KeyState] = {}
        self.gates: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, asyncio.Event] = {}
        self._calls = asyncio.Semaphore(16)  # gates share the connection pool with everyone else
        self._take = redis.register_script(scripts.TAKE)
        self._drop_stale = redis.register_script(scripts.DROP_STALE_HEAD)
        self.handovers = 0

    # ---------------------------------------------------------------- local bookkeeping

    def add(self, d: Delivery) -> None:
        """Queue ``d`` behind this consumer's earlier entries of its key, in stream order."""
        state = self.keys.get(d.key)
        if state is None:
            if d.grant:  # the common case, a key new here and free: it starts at once
                self.keys[d.key] = KeyState(d.key, [d], d.grant, True)
                d.lease = d.grant
                self.ready.put_nowait(d)
                return
            state = self.keys[d.key] = KeyState(d.key)
        chain = state.chain
        if not chain or ids.after(d.entry_id, chain[-1].entry_id):
            chain.append(d)
        else:  # an older entry, taken over from a dead consumer: it goes first if it can
            at = bisect.bisect([ids.parse(c.entry_id) for c in chain], ids.parse(d.entry_id))
            chain.insert(max(at, 1 if state.running else 0), d)
        if d.grant:
            state.lease = d.grant
        self._advance(state)

    def finished(self, d: Delivery) -> None:
        """``d`` is done here (its ack is queued for the next flush): start the next one."""
        state = self.keys[d.key]
        self._remove(state, d)
        state.done.add(d.entry_id)
        state.unflushed += 1
        if state.chain:  # else it waits for the flush
            self._advance(state)

    def abandoned(self, d: Delivery) -> None:
        """``d`` leaves this consumer unfinished (taken over, or left pending after an error)."""
        state = self.keys.get(d.key)
        if state is not None:
            self._remove(state, d)
            self._advance(state)

    def lost(self, d: Delivery) -> bool:
        """``d`` is no longer this consumer's (taken over): drop it unless it has started."""
        state = self.keys.get(d.key)
        if state is None or d not in state.chain or (state.running and state.chain[0] is d):
            return False
        self._remove(state, d)
        self._advance(state)
        return True

    def flushed(self, key: str, status: str, lease: str, count: int, next_id: str) -> None:
        """The server's word on a flush of ``count`` finishes of ``key`` under ``lease``, sent
        when ``next_id`` was the key's next entry here."""
        state = self.keys.get(key)
        if state is None:
            return
        state.unflushed -= count
        if status == "kept":
            if state.chain and state.chain[0].entry_id == next_id:
                state.chain[0].confirmed = True  # it heads the queue, and the lease is ours
        elif state.lease == lease:
            state.lease = ""
        if status == "fenced":
            log.warning(
                "lease lost before ack; another consumer owns the key's entries",
                extra={"agent": self.spec.name, "count": count},
            )
        self._advance(state)

    def forget_idle(self, before: float) -> None:
        """Drop keys kept for an entry that has not come since ``before``: the entry is ours but
        not here (left pending after an error); it comes back through a takeover."""
        for key, state in list(self.keys.items()):
            if state.idle_since is not None and state.idle_since < before and not state.chain:
                del self.keys[key]

    def next_id(self, key: str) -> str:
        """The entry of ``key`` this consumer would start next ('' when none)."""
        state = self.keys.get(key)
        return state.chain[0].entry_id if state is not None and state.chain else ""

    def leases(self) -> list[tuple[str, str, Delivery]]:
        """(key, lease, first entry) of every key this consumer holds with work left."""
        return [(s.key, s.lease, s.chain[0]) for s in self.keys.values() if s.lease and s.chain]

    def _remove(self, state: KeyState, d: Delivery) -> None:
        if state.chain and state.chain[0] is d:
            del state.chain[0]
            state.running = False
        elif d in state.chain:
            state.chain.remove(d)

    def _advance(self, state: KeyState) -> None:
        """Start the key's next entry if it may start; otherwise let its gate find out when."""
        if state.running:
            return
        if not state.chain:
            if state.unflushed or state.gate is not None:
                return
            if state.lease:  # kept for an entry of ours on its way here: wait for it a while
                state.idle_since = state.idle_since or asyncio.get_running_loop().time()
            elif self.keys.get(state.key) is state:
                del self.keys[state.key]
            return
        state.idle_since = None
        head = state.chain[0]
        if state.gate is not None:  # the gate decides; make it look again
            waiter = self._waiters.get(head.entry_id)
            if waiter is not None:
                waiter.set()
        elif state.may_start(head):
            self._start(state, head)
        else:
            gate = asyncio.create_task(self._gate(state), name=f"{self.spec.name}:gate")
            state.gate = gate
            self.gates.add(gate)
            gate.add_done_callback(self.gates.discard)

    def _start(self, state: KeyState, d: Delivery) -> None:
        state.running = True
        d.lease = state.lease
        self.ready.put_nowait(d)

    # ---------------------------------------------------------------- waiting on the server

    async def _gate(self, state: KeyState) -> None:
        """Take the key's lease for its next entry here once the server allows it."""
        try:
            await supervise(f"{self.spec.name}:gate", lambda: self._wait_turn(state))
        finally:
            state.gate = None
        if not self.stopping():
            self._advance(state)

    async def _wait_turn(self, state: KeyState) -> None:
        while state.chain and not state.running and not self.stopping():
            d = state.chain[0]  # re-read: an older entry taken over from a dead consumer goes first
            if state.may_start(d):
                return
            status = await self._try_take(state, d)
            if status == "gone":
                log.info(
                    "entry taken over by another consumer; skipped",
                    extra={"agent": self.spec.name, "entry": d.entry_id},
                )
                self._remove(state, d)
                self.drop(d)

    async def _try_take(self, state: KeyState, d: Delivery) -> str:
        """One attempt to take the lease for ``d``; waits a while unless it is 'ok' or 'gone'."""
        spec = self.spec
        kq = keys.key_queue(spec.stream, spec.group, d.key)
        # Listen before asking: a wake-up published while the script runs must not be lost.
        self._waiters[d.entry_id] = asyncio.Event()
        async with self._calls:
            status, value, ttl = await self._take(
                keys=[
                    kq,
                    keys.lease(spec.stream, spec.group, d.key),
                    keys.lease_counter(spec.stream, spec.group),
                    spec.stream,
                ],
                args=[d.entry_id, self.consumer, spec.lease_ms, spec.group, state.lease],
            )
        status, value = text(status), text(value)
        if status == "ok":
            self._waiters.pop(d.entry_id, None)
            state.lease = value
            d.confirmed = True
            self.handovers += 1
        elif status == "gone":
            self._waiters.pop(d.entry_id, None)
        elif status == "wait":  # an earlier entry of this key is another consumer's
            if not await self._wait_wake(d.entry_id, 1.0):
                async with self._calls:
                    await self._drop_stale(keys=[kq, spec.stream], args=[value, spec.group])
        else:  # another consumer holds the key's lease: wait for its release or expiry
            await self._wait_wake(d.entry_id, max(0.05, min(1.0, int(ttl) / 1000)))
        return status

    async def _wait_wake(self, entry_id: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until ``entry_id`` is announced as its key's next entry, or ``timeout``."""
        event = self._waiters.setdefault(entry_id, asyncio.Event())  # set up by _try_take
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

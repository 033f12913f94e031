"""The event log: append, read a range, tail.

An append is one Lua script, so three guarantees hold atomically on the server:
- ``expected_last_id``: the append happens only if the first stream's last id is still the one
  the caller's decision was based on (optimistic concurrency; ``"0-0"`` means "empty stream");
- ``idempotency_key``: a retried append returns the ids of the first one instead of writing again;
- several streams: the same event lands in all of them or in none (e.g. ``whatsapp:messages``
  and ``chat:{chatId}``).

The payload fields agents order by (``KEY_FIELDS``) are also written as top-level fields
``key:<name>``, so the runtime's read script finds an entry's key without decoding its payload;
entries without them (older ones, other producers) still work: the script decodes the payload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Event, Registry, UndecodableEvent
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.telemetry.tracing import inject_traceparent

_APPEND = """
local idem = KEYS[1]
if idem ~= '' then
  local prior = redis.call('GET', idem)
  if prior then return {'dup', prior} end
end
local expected = ARGV[1]
if expected ~= '' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local last_id = '0-0'
  if #last > 0 then last_id = last[1][1] end
  if last_id ~= expected then return {'conflict', last_id} end
end
local maxlen = ARGV[3]
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local ids = {}
for i = 2, #KEYS do
  if maxlen ~= '' then
    ids[#ids + 1] = redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[i], '*', unpack(fields))
  end
end
local joined = table.concat(ids, ' ')
if idem ~= '' then redis.call('SET', idem, joined, 'EX', ARGV[2]) end
return {'ok', joined}
"""


KEY_FIELDS = ("chatId", "jobId")
"""Payload fields (wire names) that agents use as ``key=``: copied to ``key:<name>`` fields."""

_key_attrs: dict[type, tuple[tuple[str, str], ...]] = {}


def key_fields(event: Event[Any]) -> dict[str, str]:
    """The ``key:<name>`` fields of ``event``: its payload's ``KEY_FIELDS`` that have a value."""
    kind = type(event.data)
    attrs = _key_attrs.get(kind)
    if attrs is None:
        attrs = _key_attrs[kind] = tuple(
            (f"key:{f.encode_name}", f.name)
            for f in msgspec.structs.fields(kind)
            if f.encode_name in KEY_FIELDS
        )
    out: dict[str, str] = {}
    for wire, attr in attrs:
        value = getattr(event.data, attr)
        if isinstance(value, str | int) and value != "":
            out[wire] = str(value)
    return out


class AppendConflict(Exception):
    """The stream moved on since the caller read it; re-read and decide again."""

    def __init__(self, stream: str, expected: str, actual: str) -> None:
        super().__init__(f"{stream}: expected last id {expected}, found {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Range:
    """One range read of ``EventLog.ranges``: ``start``/``end`` as in ``EventLog.read``."""

    stream: str
    start: str = "-"
    end: str = "+"
    count: int | None = None
    reverse: bool = False


RawEntry = tuple[Any, list[Any]]
"""An entry as Valkey sends it: its id and its fields flat (name, value, name, value...)."""


def _as_is(response: Any, **_options: Any) -> Any:
    return response


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an event landed: one id per stream, and whether it was already there."""

    ids: tuple[str, ...]
    duplicate: bool = False

    @property
    def id(self) -> str:
        return self.ids[0]


class EventLog:
    """Typed access to ASPRI's streams on one Redis connection pool."""

    def __init__(
        self,
        redis: Redis,
        registry: Registry = REGISTRY,
        *,
        idempotency_ttl_s: int = 7 * 24 * 3600,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.idempotency_ttl_s = idempotency_ttl_s
        self._append = redis.register_script(_APPEND)
        # Same pool, replies left flat: the reads of ``ranges`` are decoded by their callers.
        self._raw = Redis(connection_pool=redis.connection_pool)
        self._raw.set_response_callback("XRANGE", _as_is)
        self._raw.set_response_callback("XREVRANGE", _as_is)

    async def append(
        self,
        streams: str | Sequence[str],
        event: Event[Any],
        *,
        expected_last_id: str | None = None,
        idempotency_key: str | None = None,
        maxlen: int | None = None,
    ) -> Appended:
        """Append ``event`` to one or more streams atomically.

        Raises AppendConflict when ``expected_last_id`` is given and the first stream's last id
        differs. With ``idempotency_key``, a second append returns the first one's ids with
        ``duplicate=True`` and writes nothing.
        """
        names = [streams] if isinstance(streams, str) else list(streams)
        if not names:
            raise ValueError("append needs at least one stream")
        if event.traceparent is None:
            event = inject_traceparent(event)
        flat: list[str | bytes] = []
        for name, value in (self.registry.to_fields(event) | key_fields(event)).items():
            flat += [name, value]
        idem = keys.idempotency(idempotency_key) if idempotency_key else ""
        args = [expected_last_id or "", self.idempotency_ttl_s, maxlen or "", *flat]
        status, payload = await self._append(keys=[idem, *names], args=args)
        status, payload = text(status), text(payload)
        if status == "conflict":
            raise AppendConflict(names[0], expected_last_id or "", payload)
        return Appended(tuple(payload.split(" ")), duplicate=status == "dup")

    async def last_id(self, stream: str) -> str:
        """The id of the newest entry, ``"0-0"`` for an empty or missing stream."""
        last = await self.redis.xrevrange(stream, "+", "-", count=1)
        return text(last[0][0]) if last else "0-0"

    async def read(
        self,
        stream: str,
        start: str = "-",
        end: str = "+",
        count: int | None = None,
        *,
        reverse: bool = False,
        skip_undecodable: bool = True,
    ) -> list[Event[Any]]:
        """Entries between ``start`` and ``end`` (inclusive; ``(id`` excludes), decoded.

        With ``reverse`` the newest come first and ``start``/``end`` keep their meaning.
        """
        if reverse:
            raw: Any = await self.redis.xrevrange(stream, end, start, count=count)
        else:
            raw = await self.redis.xrange(stream, start, end, count=count)
        return self._decode_all(stream, raw, skip_undecodable)

    async def ranges(self, reads: Sequence[Range]) -> list[list[RawEntry]]:
        """Several range reads in one round trip (a pipeline, not atomic), entries undecoded:
        a turn reads its chat and the folds it depends on at once (``decode`` them)."""
        pipe = self._raw.pipeline(transaction=False)
        for r in reads:
            if r.reverse:
                pipe.xrevrange(r.stream, r.end, r.start, count=r.count)
            else:
                pipe.xrange(r.stream, r.start, r.end, count=r.count)
        replies: list[list[RawEntry]] = await pipe.execute()
        return replies

    def decode(self, stream: str, raw: Sequence[RawEntry]) -> list[Event[Any]]:
        """The events of entries read by ``ranges`` (undecodable ones left out)."""
        out: list[Event[Any]] = []
        for entry_id, flat in raw:
            pairs = iter(flat)
            fields = dict(zip(pairs, pairs, strict=False))
            try:
                event = self.registry.from_fields(fields, entry_id=text(entry_id), stream=stream)
            except UndecodableEvent:
                continue
            out.append(event)
        return out

    async def tail(
        self, stream: str, after: str = "$", *, block_ms: int = 5_000, batch: int = 500
    ) -> AsyncIterator[Event[Any]]:
        """Every event after ``after`` (``"$"``: only new ones), forever; blocking reads."""
        cursor = after
        if cursor == "$":
            cursor = await self.last_id(stream)
        while True:
            reply: Any = await self.redis.xread({stream: cursor}, count=batch, block=block_ms)
            for _name, entries in reply or []:
                for event in self._decode_all(stream, entries, True):
                    yield event
                if entries:
                    cursor = text(entries[-1][0])

    def _decode_all(self, stream: str, raw: list[Any], skip_undecodable: bool) -> list[Event[Any]]:
        out: list[Event[Any]] = []
        for entry_id, fields in raw:
            try:
                event = self.registry.from_fields(fields, entry_id=text(entry_id), stream=stream)
            except UndecodableEvent:
                if not skip_undecodable:
                    raise
            else:
                out.append(event)
        return out

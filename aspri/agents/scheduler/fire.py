"""Writing job runs: triggers to ``cronjob:events``, their record to ``cronjob:jobs``.

One Lua script call writes a chunk of runs, atomically and at most once:
- fenced: nothing is written unless the lease key still holds this scheduler's token;
- optimistic concurrency: nothing is written unless ``cronjob:jobs`` is still exactly as the
  scheduler folded it when it decided (its last id), so a run already recorded as fired or
  skipped, by anyone, can never be written again; a later chunk of the same step instead
  expects the record the chunk before it wrote (``event:<eventId>``);
- the triggers and the ``cronjob:fired`` record listing them land together or not at all.
Each trigger's eventId is fixed by (jobId, scheduledTime) (UUIDv7 layout with the scheduled
time as its timestamp), so consumers can recognise a run by its id too.

Speed: a run's trigger is encoded when the run is planned, long before it is due; at the due
time the scheduler only joins the prepared bytes, and the server stamps ``timestamp`` (its
clock when the entry is written) and the chunk's ``traceparent``. 10,000 runs due at once cost
the server one XADD each plus one record per chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry import trace
from redis.asyncio import Redis

from aspri.schemas import REGISTRY, CronTrigger, Event
from aspri.schemas.cron import FiredRun, JobFired, JobRecord, JobSkipped, Skip
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.telemetry.tracing import EVENT_ID

_tracer = trace.get_tracer("aspri.scheduler")

_WRITE = """
-- KEYS: lease, trigger stream, registry stream
-- ARGV: token, expected (registry last id, or 'event:<eventId>' of its last entry), traceparent,
--       the triggers' type, source and v, the triggers (msgpack: eventId, data, eventId, ...),
--       the records (msgpack array of field lists without timestamp and traceparent)
local call = redis.call
if call('GET', KEYS[1]) ~= ARGV[1] then return {'fenced', ''} end
local last = call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local last_id, last_event = '0-0', ''
if #last > 0 then
  last_id = last[1][1]
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'eventId' then last_event = f[i + 1] end
  end
end
if ARGV[2] ~= last_id and ARGV[2] ~= 'event:' .. last_event then return {'conflict', last_id} end
local now = call('TIME')
local ts = tostring(now[1] * 1000 + math.floor(now[2] / 1000))
local tp, ty, src, v, out = ARGV[3], ARGV[4], ARGV[5], ARGV[6], KEYS[2]
local runs = cmsgpack.unpack(ARGV[7])
if tp ~= '' then
  for i = 1, #runs, 2 do
    call('XADD', out, '*', 'eventId', runs[i], 'type', ty, 'source', src, 'timestamp', ts,
         'data', runs[i + 1], 'v', v, 'traceparent', tp)
  end
else
  for i = 1, #runs, 2 do
    call('XADD', out, '*', 'eventId', runs[i], 'type', ty, 'source', src, 'timestamp', ts,
         'data', runs[i + 1], 'v', v)
  end
end
local id = last_id
for _, fields in ipairs(cmsgpack.unpack(ARGV[8])) do
  fields[#fields + 1] = 'timestamp'; fields[#fields + 1] = ts
  if tp ~= '' then fields[#fields + 1] = 'traceparent'; fields[#fields + 1] = tp end
  id = call('XADD', KEYS[3], '*', unpack(fields))
end
return {'ok', id}
"""

_ENCODE = msgspec.msgpack.Encoder()


class Fenced(Exception):
    """The lease is not ours any more: another scheduler fires now."""


class Conflict(Exception):
    """The registry changed since the decision; fold it again and decide again."""


def trigger_event_id(job_id: str, scheduled_ms: int) -> str:
    """A UUIDv7-shaped id fixed by (jobId, scheduledTime): the same run always has the same id."""
    digest = hashlib.blake2b(f"{job_id}\n{scheduled_ms}".encode(), digest_size=10).digest()
    raw = bytearray(scheduled_ms.to_bytes(6, "big") + digest)
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _field_map(event: Event[Any]) -> dict[str, str]:
    """The event's wire fields, without what the server stamps (timestamp, traceparent)."""
    return {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in REGISTRY.to_fields(event).items()
        if name not in ("timestamp", "traceparent")
    }


def _fields(event: Event[Any]) -> list[str]:
    """The same as a flat list, as XADD takes it."""
    return [part for pair in _field_map(event).items() for part in pair]


_TRIGGER_FIELDS = ("eventId", "type", "source", "data", "v")
"""The trigger's wire fields besides what the server stamps; the script writes them in order."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A run ready to fire: its trigger's eventId and data encoded for the script, its record
    entry built."""

    job_id: str
    scheduled: int
    event_id: str
    trigger: bytes
    fired: FiredRun


def prepare(job: JobRecord, scheduled: int) -> Prepared:
    """Encode the trigger of ``job``'s run at ``scheduled`` (done when the run is planned)."""
    event_id = trigger_event_id(job.job_id, scheduled)
    data = CronTrigger(
        job_id=job.job_id, job_name=job.name, scheduled_time=scheduled, payload=job.payload
    )
    fields = _field_map(_trigger(data, event_id))
    fired = FiredRun(job_id=job.job_id, scheduled_time=scheduled, trigger_event_id=event_id)
    encoded = _ENCODE.encode(event_id) + _ENCODE.encode(fields["data"])
    return Prepared(job.job_id, scheduled, event_id, encoded, fired)


def _trigger(data: CronTrigger, event_id: str = "") -> Event[CronTrigger]:
    return REGISTRY.event(data, event_id=event_id, source="cronjob", timestamp=0)


def _constants() -> list[str]:
    """The trigger fields that are the same for every run: type, source and v."""
    fields = _field_map(_trigger(CronTrigger(job_id="", job_name="", scheduled_time=0)))
    if tuple(fields) != _TRIGGER_FIELDS:  # the script writes exactly these: keep them in step
        raise RuntimeError(f"trigger wire fields changed to {tuple(fields)}; update _WRITE")
    return [fields["type"], fields["source"], fields["v"]]


def skip_record(job: JobRecord, skip: Skip) -> Event[JobSkipped]:
    """The registry record of runs missed by more than the grace period."""
    data = JobSkipped(
        job_id=job.job_id,
        first_scheduled_time=skip.first,
        last_scheduled_time=skip.last,
        count=skip.missed,
    )
    return REGISTRY.event(data, source="cronjob", timestamp=0)


def _array(items: Sequence[bytes], per_item: int = 1) -> bytes:
    """A msgpack array of already encoded items (``per_item`` elements each)."""
    return b"\xdd" + (len(items) * per_item).to_bytes(4, "big") + b"".join(items)


class RunWriter:
    """Writes fires and skips with the fenced, concurrency-checked script, chunk by chunk."""

    def __init__(
        self,
        redis: Redis,
        *,
        lease_key: str = keys.CRON_LEASE,
        chunk: int = 1000,
        stream: str = keys.CRON_EVENTS,
    ) -> None:
        self.redis = redis
        self.lease_key = lease_key
        self.stream = stream
        """Where triggers go (``CRONJOB_STREAM_NAME``)."""
        self.chunk = chunk
        self._script = redis.register_script(_WRITE)
        self._constants = _constants()

    async def write(
        self,
        token: str,
        expected_last_id: str,
        fires: Sequence[Prepared],
        skips: Sequence[Event[JobSkipped]] = (),
    ) -> str:
        """Write ``skips`` then ``fires``; returns the registry's new last id.

        Raises Fenced or Conflict; chunks before the failing one are written (and recorded).
        """
        chunks: list[tuple[list[Prepared], list[Event[Any]]]] = []
        if skips:
            chunks.append(([], list(skips)))
        for start in range(0, len(fires), self.chunk):
            part = list(fires[start : start + self.chunk])
            record = REGISTRY.event(
                JobFired(runs=[p.fired for p in part]), source="cronjob", timestamp=0
            )
            chunks.append((part, [record]))
        pipe = self.redis.pipeline(transaction=False)
        spans: list[trace.Span] = []
        expected = expected_last_id
        for part, records in chunks:
            span = _tracer.start_span(
                f"{self.stream} publish",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "redis",
                    "messaging.destination.name": self.stream,
                    "messaging.batch.message_count": len(part),
                    # one trigger per chunk is the usual case: then the tag search finds it
                    EVENT_ID: (
                        part[0].event_id if len(part) == 1 else [p.event_id for p in part[:20]]
                    ),
                    "aspri.job_id": [p.job_id for p in part[:20]],
                },
            )
            spans.append(span)
            args: list[str | bytes] = [
                token,
                expected,
                _traceparent(span),
                *self._constants,
                _array([p.trigger for p in part], per_item=2),
                _array([_ENCODE.encode(_fields(r)) for r in records]),
            ]
            stream_keys = [self.lease_key, self.stream, keys.CRON_JOBS]
            await self._script(keys=stream_keys, args=args, client=pipe)
            expected = f"event:{records[-1].event_id}"
        try:
            replies = await pipe.execute()
        finally:
            for span in spans:
                span.end()
        last = expected_last_id
        for reply in replies:
            status, value = text(reply[0]), text(reply[1])
            if status == "fenced":
                raise Fenced(self.lease_key)
            if status == "conflict":
                raise Conflict(value)
            last = value
        return last


def _traceparent(span: trace.Span) -> str:
    """The W3C traceparent of ``span`` ('' when tracing is off)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

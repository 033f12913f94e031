"""The cron job registry: its events (``cronjob:jobs``), its fold, and when a job runs.

The gateway and the scheduler both fold ``cronjob:jobs`` with ``apply_job_event`` (they must
not import each other, so the fold lives here), and both ask ``next_run``/``plan`` when a job
runs next. Times are Unix milliseconds; schedules are evaluated in the job's IANA timezone.

Cron expressions have 5 fields (``minute hour day-of-month month day-of-week``) or 6 with a
leading seconds field (``second minute hour ...``, as node-cron reads them); croniter's
``@hourly``/``@daily``-style aliases work too. Daylight saving time follows Vixie cron: a run
whose wall-clock time falls into the hour skipped in spring happens right after the jump
(02:30 → 03:00 in Europe/Berlin); in autumn a job with a fixed hour runs once, not in both
copies of the repeated hour, while a job whose hour field is ``*`` runs in every real hour.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
from croniter import CroniterBadDateError, CroniterError, croniter

from aspri.schemas.envelope import Event
from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY

RUNNING = "running"
STOPPED = "stopped"
COMPLETED = "completed"
STATUSES = (RUNNING, STOPPED, COMPLETED)

SKIP_COUNT_CAP = 1000
"""Missed runs are counted up to this many; a skip record with this count means "at least"."""

MAX_SCHEDULE_CHARS = 200
"""Longer schedules are refused unparsed: croniter takes seconds over a 500 KB expression."""

# ------------------------------------------------------------------ events


class JobCreated(Payload, frozen=True, kw_only=True):
    """``cronjob:created`` v1. ``digest`` fingerprints the request, so a retry is recognised."""

    job_id: str
    name: str
    schedule: str | None = None
    run_at: int | None = None
    timezone: str = "UTC"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = RUNNING
    digest: str = ""


class JobUpdated(Payload, frozen=True, kw_only=True):
    """``cronjob:updated`` v1: the whole new definition (not a diff), so the fold is trivial."""

    job_id: str
    name: str
    schedule: str | None = None
    run_at: int | None = None
    timezone: str = "UTC"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = RUNNING


class JobDeleted(Payload, frozen=True, kw_only=True):
    """``cronjob:deleted`` v1."""

    job_id: str


class JobStarted(Payload, frozen=True, kw_only=True):
    """``cronjob:started`` v1: runs count again from the event's timestamp."""

    job_id: str


class JobStopped(Payload, frozen=True, kw_only=True):
    """``cronjob:stopped`` v1."""

    job_id: str


class FiredRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One run of a job whose trigger (eventId ``triggerEventId``) is in ``cronjob:events``."""

    job_id: str
    scheduled_time: int
    trigger_event_id: str = ""


class JobFired(Payload, frozen=True, kw_only=True):
    """``cronjob:fired`` v1: runs fired together, each (jobId, scheduledTime) once.

    The scheduler writes it in the same atomic step as the triggers it lists, one per batch of
    runs due at the same time (one event per run would double the server's work at a burst).
    """

    runs: list[FiredRun]


class JobSkipped(Payload, frozen=True, kw_only=True):
    """``cronjob:skipped`` v1: runs missed by more than the grace period, not fired.

    ``count`` is capped at SKIP_COUNT_CAP.
    """

    job_id: str
    first_scheduled_time: int
    last_scheduled_time: int
    count: int = 1


class JobRejected(Payload, frozen=True, kw_only=True):
    """``cronjob:rejected`` v1: the scheduler cannot plan this definition of the job (unknown
    timezone, a schedule croniter refuses, a time no calendar shows), so it never fires it.

    Written by any producer that finds it out (the gateway refuses such definitions, but any
    producer can append to ``cronjob:jobs``); ``definedAt`` is the ``updatedAt`` of the
    definition it is about, so a later, good definition is not held back by it.
    """

    job_id: str
    reason: str
    defined_at: int


REGISTRY.register("cronjob:created", JobCreated)
REGISTRY.register("cronjob:updated", JobUpdated)
REGISTRY.register("cronjob:deleted", JobDeleted)
REGISTRY.register("cronjob:started", JobStarted)
REGISTRY.register("cronjob:stopped", JobStopped)
REGISTRY.register("cronjob:fired", JobFired)
REGISTRY.register("cronjob:skipped", JobSkipped)
REGISTRY.register("cronjob:rejected", JobRejected)

# ------------------------------------------------------------------ state and fold


class JobRecord(msgspec.Struct, kw_only=True, rename="camel"):
    """One job as the registry knows it; ``armedAt`` is when its runs started to count."""

    job_id: str
    name: str
    schedule: str | None
    run_at: int | None
    timezone: str
    payload: dict[str, Any]
    status: str
    created_at: int
    updated_at: int
    armed_at: int
    digest: str = ""
    last_scheduled: int | None = None
    last_run_at: int | None = None
    runs: int = 0
    skips: int = 0
    problem: str | None = None
    """Why this definition cannot be planned (then it never fires); None for a usable one."""
    rejected: bool = False
    """Whether a ``cronjob:rejected`` event records ``problem`` for this definition."""

    @property
    def cursor(self) -> int:
        """Runs at or before this time are done (fired, skipped, or before the job was armed)."""
        if self.last_scheduled is None:
            return self.armed_at
        return max(self.armed_at, self.last_scheduled)


TOMBSTONES = 10_000
"""Deleted jobs remembered (newest), so a retried DELETE can answer like the first one."""


class CronState(msgspec.Struct, kw_only=True):
    """The registry: every job not deleted, by id, and the latest deleted ones."""

    jobs: dict[str, JobRecord] = msgspec.field(default_factory=dict)
    deleted: dict[str, JobRecord] = msgspec.field(default_factory=dict)


def job_ids_of(event: Event[Any]) -> list[str]:
    """The jobs an event of ``cronjob:jobs`` is about."""
    if isinstance(event.data, JobFired):
        return [run.job_id for run in event.data.runs]
    job_id = getattr(event.data, "job_id", None)
    return [job_id] if isinstance(job_id, str) else []


def _created(state: CronState, data: JobCreated, ts: int) -> None:
    if data.job_id in state.jobs:  # the gateway prevents this; first definition wins
        return
    state.deleted.pop(data.job_id, None)
    state.jobs[data.job_id] = JobRecord(
        job_id=data.job_id,
        name=data.name,
        schedule=data.schedule,
        run_at=data.run_at,
        timezone=data.timezone,
        payload=data.payload,
        status=data.status,
        created_at=ts,
        updated_at=ts,
        armed_at=ts,
        digest=data.digest,
    )
    job = state.jobs[data.job_id]
    job.problem = unplannable(job)


def _updated(state: CronState, data: JobUpdated, ts: int) -> None:
    job = state.jobs.get(data.job_id)
    if job is None:
        return
    retimed = (job.schedule, job.run_at, job.timezone) != (
        data.schedule,
        data.run_at,
        data.timezone,
    )
    resumed = job.status != RUNNING and data.status == RUNNING
    if retimed or resumed:
        job.armed_at = ts
    job.name, job.schedule, job.run_at = data.name, data.schedule, data.run_at
    job.timezone, job.payload, job.status = data.timezone, data.payload, data.status
    job.updated_at = ts
    if retimed:
        job.problem, job.rejected = unplannable(job), False


def _status(state: CronState, job_id: str, status: str, ts: int) -> None:
    job = state.jobs.get(job_id)
    if job is None or job.status == status:
        return
    if status == RUNNING:
        job.armed_at = ts
    job.status = status
    job.updated_at = ts


def _deleted(state: CronState, job_id: str, ts: int) -> None:
    job = state.jobs.pop(job_id, None)
    if job is None:
        return
    job.updated_at = ts
    state.deleted[job_id] = job
    if len(state.deleted) > TOMBSTONES:
        del state.deleted[next(iter(state.deleted))]


def _done(job: JobRecord, scheduled: int) -> None:
    """Advance the cursor; a one-shot whose run this was is complete."""
    if job.last_scheduled is None or scheduled > job.last_scheduled:
        job.last_scheduled = scheduled
    if job.run_at is not None and job.run_at == scheduled:
        job.status = COMPLETED


def apply_job_event(state: CronState, event: Event[Any]) -> None:
    """The fold of ``cronjob:jobs``; events about unknown jobs (already deleted) are ignored."""
    data, ts = event.data, event.timestamp
    if isinstance(data, JobFired):
        for run in data.runs:
            job = state.jobs.get(run.job_id)
            if job is not None and (job.last_scheduled or -1) < run.scheduled_time:
                _done(job, run.scheduled_time)
                job.runs += 1
                job.last_run_at = ts
    elif isinstance(data, JobSkipped):
        job = state.jobs.get(data.job_id)
        if job is not None and (job.last_scheduled or -1) < data.last_scheduled_time:
            _done(job, data.last_scheduled_time)
            job.skips += data.count
    elif isinstance(data, JobCreated):
        _created(state, data, ts)
    elif isinstance(data, JobUpdated):
        _updated(state, data, ts)
    elif isinstance(data, JobDeleted):
        _deleted(state, data.job_id, ts)
    elif isinstance(data, JobStarted):
        _status(state, data.job_id, RUNNING, ts)
    elif isinstance(data, JobStopped):
        _status(state, data.job_id, STOPPED, ts)
    elif isinstance(data, JobRejected):
        job = state.jobs.get(data.job_id)
        if job is not None and job.updated_at == data.defined_at:
            job.problem, job.rejected = job.problem or data.reason, True


# ------------------------------------------------------------------ timing


@functools.lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (raises ZoneInfoNotFoundError or ValueError when unknown)."""
    return ZoneInfo(name)


def unplannable(job: JobRecord) -> str | None:
    """Why the scheduler could not plan this definition, or None when it can.

    The gateway refuses such definitions; this catches those any other producer appends, so
    one bad entry cannot stop the scheduler or ``GET /api/jobs`` for every other job.
    """
    try:
        tz = zone(job.timezone)
    except (KeyError, ValueError, OSError):  # not found, a path, a name too long for a file
        return f"timezone: unknown IANA timezone {job.timezone[:64]!r}"
    if job.schedule is not None:
        if len(job.schedule) > MAX_SCHEDULE_CHARS:
            return f"schedule: {len(job.schedule)} characters; at most {MAX_SCHEDULE_CHARS}"
        try:
            parse_cron(job.schedule)
        except (CroniterError, ValueError, TypeError, KeyError, IndexError):
            return f"schedule: {job.schedule[:64]!r} is not a cron expression"
    for name, ms in (("runAt", job.run_at), ("createdAt", job.created_at)):
        if ms is None:
            continue
        try:
            datetime.fromtimestamp(ms / 1000, tz).astimezone(UTC)
        except (ValueError, OverflowError, OSError):
            return f"{name}: {ms} ms is outside the dates timezone {job.timezone!r} can show"
    return None


@functools.lru_cache(maxsize=4096)
def parse_cron(schedule: str) -> croniter:
    """A croniter for ``schedule`` (6 fields: seconds first); raises CroniterError if invalid."""
    return croniter(schedule, 0.0, second_at_beginning=len(schedule.split()) == 6)


def _step_ms(schedule: str) -> int:
    """Occurrences fall on whole minutes (5 fields) or whole seconds (6 fields)."""
    return 1_000 if len(schedule.split()) == 6 else 60_000


def _repeated(ms: int, tz: ZoneInfo, expr: croniter) -> bool:
    """Is ``ms`` the second copy of a wall-clock time repeated in autumn, for a fixed-hour job?"""
    if expr.expanded[1] == ["*"]:
        return False
    local = datetime.fromtimestamp(ms / 1000, tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


@functools.lru_cache(maxsize=65536)
def _cron_step(schedule: str, tz_name: str, start_ms: int, backwards: bool) -> int | None:
    expr, tz = parse_cron(schedule), zone(tz_name)
    start = datetime.fromtimestamp(start_ms / 1000, tz)
    for _ in range(4000):  # only the repeated autumn hour can need more than one step
        try:
            ts = expr.get_prev(float, start) if backwards else expr.get_next(float, start)
        except CroniterBadDateError:
            return None
        ms = round(ts * 1000)
        if not _repeated(ms, tz, expr):
            return ms
        start = datetime.fromtimestamp(ts, tz)
    return None


def cron_next(schedule: str, tz_name: str, after_ms: int) -> int | None:
    """The first occurrence strictly after ``after_ms``, or None if there is none."""
    step = _step_ms(schedule)
    # No occurrence lies between a whole step and ``after_ms``: rounding down makes the cache hit.
    return _cron_step(schedule, tz_name, after_ms - after_ms % step, False)


def cron_latest(schedule: str, tz_name: str, at_ms: int) -> int | None:
    """The last occurrence at or before ``at_ms``."""
    step = _step_ms(schedule)
    return _cron_step(schedule, tz_name, at_ms - at_ms % step + 1, True)


def next_run(job: JobRecord, after_ms: int) -> int | None:
    """The job's first run strictly after ``after_ms`` (whatever its status)."""
    if job.schedule is not None:
        return cron_next(job.schedule, job.timezone, after_ms)
    if job.run_at is not None and job.run_at > after_ms:
        return job.run_at
    return None


class Skip(NamedTuple):
    """Runs from ``first`` to ``last`` (``missed`` of them, capped) that will not fire."""

    first: int
    last: int
    missed: int


class Plan(NamedTuple):
    """What to do about a job now: fire ``due`` (when ≤ now) and record ``skip`` first."""

    due: int | None
    skip: Skip | None = None


def _count(job: JobRecord, first: int, last: int) -> int:
    count, t = 1, first
    while t < last and count < SKIP_COUNT_CAP:
        nxt = next_run(job, t)
        if nxt is None or nxt > last:
            break
        count, t = count + 1, nxt
    return count


def plan(job: JobRecord, now_ms: int, grace_ms: int) -> Plan:
    """The next run to fire, and the missed runs to skip.

    Of the runs missed while no scheduler ran, the latest fires if it is at most ``grace_ms``
    late; the older ones (or all of them, when even the latest is too late) are skipped.
    """
    if job.status != RUNNING or job.problem is not None:
        return Plan(None)
    first = next_run(job, job.cursor)
    if first is None or first > now_ms:
        return Plan(first)
    latest = first
    if job.schedule is not None:
        latest = cron_latest(job.schedule, job.timezone, now_ms) or first
    if now_ms - latest <= grace_ms:
        if latest == first:
            return Plan(latest)
        before = next_run_before(job, latest)
        last = before if before is not None and before >= first else first
        return Plan(latest, Skip(first, last, _count(job, first, last)))
    return Plan(next_run(job, now_ms), Skip(first, latest, _count(job, first, latest)))


def next_run_before(job: JobRecord, at_ms: int) -> int | None:
    """The job's last run strictly before ``at_ms`` (cron jobs only)."""
    if job.schedule is None:
        return None
    return cron_latest(job.schedule, job.timezone, at_ms - 1)

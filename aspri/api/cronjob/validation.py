"""Checking job requests, with messages that name the field and say how to fix it.

An LLM reads these messages through MCP and must be able to correct its call from them alone,
so every message starts with the field (``schedule: ...``) and gives an example of a valid value.
Nothing reaches the registry before it passed these checks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from croniter import CroniterError, croniter

from aspri.api.common import ApiError
from aspri.api.cronjob import original
from aspri.schemas.api import JobCreate, JobUpdate
from aspri.schemas.cron import (
    COMPLETED,
    RUNNING,
    STATUSES,
    STOPPED,
    JobRecord,
    cron_next,
    parse_cron,
    zone,
)

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
MAX_SCHEDULE_CHARS = 200
"""Checked before any parsing: croniter takes seconds over a 500 KB expression."""
RUN_AT_MAX_AHEAD = timedelta(days=3653)
"""``runAt`` at most about ten years ahead (and not before 1970): every timezone can show it."""
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1e3c52-7c0e-4c43-9f3b-2a8d7f0b9e41")

_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31 or L"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat"),
)
_CRON_FORMS = "a number, '*', a list '1,15', a range '1-5' or a step '*/10'"


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one gateway accepts beyond well-formedness (settings ``CRON_*``, see README)."""

    allow_seconds: bool = False
    """Whether a schedule may fire more often than once a minute (``CRON_ALLOW_SECONDS``)."""
    max_jobs_per_chat: int = 100
    """Jobs whose payload targets one chat (``CRON_MAX_JOBS_PER_CHAT``)."""
    local_timezone: str = "UTC"
    """The original's "server local time" (``ASPRI_TIMEZONE``): a ``yyyyMMddHHmmss``
    ``scheduledTime`` is read in it and the original's fields are shown in it."""


DEFAULT_LIMITS = Limits()
ALLOW_ALL = Limits(allow_seconds=True)
"""For re-checking a stored schedule: what was accepted once stays accepted."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A job as checked: exactly one of ``schedule`` and ``run_at`` (Unix ms) is set."""

    name: str
    schedule: str | None
    run_at: int | None
    timezone: str
    payload: dict[str, Any]
    status: str
    delay: str | None = None
    """The ``delayTime`` ``run_at`` was computed from: the digest uses it instead, so a retry
    made later is still the same request."""
    time_field: str = "runAt"
    """The request's name for ``run_at``, for messages (the original's ``scheduledTime``)."""

    def fields(self) -> dict[str, Any]:
        """The definition's fields in declaration order (what the job events carry)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("delay", "time_field")
        }

    def digest(self) -> str:
        """Fingerprint of the definition: a retried create has the same one."""
        values = self.fields()
        if self.delay is not None:
            values["run_at"] = f"+{self.delay}"
        body = msgspec.json.encode(list(values.values()), order="deterministic")
        return hashlib.sha256(body).hexdigest()


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> str:
    if name not in _zones():
        raise invalid(
            f"timezone: unknown IANA timezone {name!r}; use a name such as 'UTC', "
            "'Europe/Berlin' or 'Asia/Jakarta'"
        )
    return name


def check_schedule(expression: str, timezone: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """The normalised cron expression, or a 400 saying which field is wrong and why."""
    if len(expression) > MAX_SCHEDULE_CHARS:
        raise invalid(
            f"schedule: is {len(expression)} characters; the limit is {MAX_SCHEDULE_CHARS} "
            "(a cron expression such as '0 9 * * 1-5')"
        )
    schedule = " ".join(expression.split())
    if not schedule:
        raise invalid("schedule: must not be empty; give a cron expression such as '0 9 * * *'")
    prefix = f"schedule: invalid cron expression {expression!r}"
    fields = schedule.split()
    if schedule.startswith("@"):
        _parse(schedule, f"{prefix}: use @yearly, @monthly, @weekly, @daily or @hourly")
    elif len(fields) not in (5, 6):
        raise invalid(
            f"{prefix}: it has {len(fields)} fields; use 5 (minute hour day-of-month month "
            "day-of-week, e.g. '0 9 * * 1-5') or 6 with seconds first (e.g. '30 0 9 * * *')"
        )
    else:
        names = ((("second", "0-59"),) if len(fields) == 6 else ()) + _CRON_FIELDS
        for i, (field, allowed) in enumerate(names):
            probe = ["*"] * len(fields)
            probe[i] = fields[i]
            _parse(
                " ".join(probe),
                f"{prefix}: {field} must be {allowed} (got {fields[i]!r}); each field is "
                f"{_CRON_FORMS}",
            )
        _parse(schedule, f"{prefix}: the fields do not combine into a valid schedule")
    if cron_next(schedule, timezone, 0) is None:
        raise invalid(f"{prefix}: it never matches a date (e.g. 30 February)")
    if not limits.allow_seconds and len(fields) == 6 and _seconds(schedule) != 1:
        raise invalid(
            f"schedule: {expression!r} fires more than once a minute (second field "
            f"{fields[0]!r}); use 5 fields (e.g. '* * * * *' for every minute) or one second "
            "value (e.g. '30 * * * * *'); CRON_ALLOW_SECONDS=true lifts this limit"
        )
    return schedule


def _seconds(schedule: str) -> int:
    """How many second values a 6-field schedule fires at (croniter keeps them last; 60 = *)."""
    values = parse_cron(schedule).expanded[5]
    return 60 if values == ["*"] else len(values)


def _parse(schedule: str, message: str) -> None:
    try:
        croniter(schedule, 0.0, second_at_beginning=len(schedule.split()) == 6)
    except (CroniterError, ValueError, TypeError, KeyError):
        raise invalid(message) from None


def parse_run_at(value: str, timezone: str, now_ms: int) -> int:
    """Unix ms of an ISO-8601 date-time; one without an offset is read in the job's timezone.

    Only 1970 to about ten years ahead: a time outside cannot be shown in every timezone.
    """
    example = "write e.g. '2026-05-01T09:00:00+07:00'"
    try:
        moment = datetime.fromisoformat(value.strip()[:64])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone(timezone))
        run_at = round(moment.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise invalid(
            f"runAt: {value[:64]!r} is not an ISO-8601 date-time; {example} (without an offset "
            "it is read in the job's timezone)"
        ) from None
    latest = now_ms + int(RUN_AT_MAX_AHEAD.total_seconds() * 1000)
    if not 0 <= run_at <= latest:
        raise invalid(
            f"runAt: {value[:64]!r} is out of range; give a time between now and "
            f"{iso(latest, 'UTC')[:10]} (about ten years ahead); {example}"
        )
    return run_at


def require_future(run_at: int | None, now_ms: int, field: str = "runAt") -> None:
    if run_at is not None and run_at <= now_ms:
        raise invalid(
            f"{field}: {iso(run_at, 'UTC')} is in the past (it is now {iso(now_ms, 'UTC')}); "
            "give a future time"
        )


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise invalid("name: must not be empty; give the job a short description")
    if len(name) > MAX_NAME_CHARS:
        raise invalid(f"name: is {len(name)} characters; the limit is {MAX_NAME_CHARS}")
    return name


def check_payload(payload: dict[str, Any]) -> dict[str, Any]:
    size = len(msgspec.json.encode(payload))
    if size > MAX_PAYLOAD_BYTES:
        raise invalid(
            f"payload: is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES} bytes (64 KiB)"
        )
    return payload


def check_job_id(job_id: str) -> str:
    if _JOB_ID.fullmatch(job_id) is None:
        raise invalid(
            f"jobId: {job_id[:140]!r} is not a valid id; use 1-128 letters, digits, '.', '_', "
            "':' or '-', starting with a letter or digit"
        )
    return job_id


def check_status(status: str, allowed: tuple[str, ...] = (RUNNING, STOPPED)) -> str:
    if status not in allowed:
        options = ", ".join(repr(s) for s in allowed)
        raise invalid(f"status: must be one of {options} (got {status!r})")
    return status


def check_status_filter(status: str | None) -> str | None:
    return None if status is None else check_status(status, STATUSES)


def _timing(schedule: str | None, run_at: str | None) -> None:
    if (schedule is None) == (run_at is None):
        given = "both were given" if schedule is not None else "neither was given"
        raise invalid(
            f"schedule, runAt: give exactly one ({given}): schedule is a cron expression for a "
            "recurring job (e.g. '0 9 * * *'), runAt an ISO-8601 time for a one-shot job "
            "(e.g. '2026-05-01T09:00:00+07:00')"
        )


def parse_create(body: JobCreate, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> Definition:
    """Every check of a create except "runAt is in the future" (a retry may come late)."""
    name = check_name(body.name)
    timezone = check_timezone("UTC" if body.timezone is None else body.timezone)
    if body.type is None and body.scheduled_time is None and body.delay_time is None:
        _timing(body.schedule, body.run_at)
    else:
        original.require_timing(
            body.type,
            {
                "schedule": body.schedule,
                "runAt": body.run_at,
                "scheduledTime": body.scheduled_time,
                "delayTime": body.delay_time,
            },
        )
    schedule = (
        check_schedule(body.schedule, timezone, limits) if body.schedule is not None else None
    )
    run_at = _run_at(body, timezone, now_ms, limits)
    if body.delay_time is not None:
        run_at = now_ms + original.parse_delay(body.delay_time)
    status = check_status(body.status)
    if body.enabled is not None and status != RUNNING and body.enabled:
        raise invalid(f"enabled, status: enabled is true but status is {status!r}; give one")
    return Definition(
        name=name,
        schedule=schedule,
        run_at=run_at,
        timezone=timezone,
        payload=check_payload(body.payload),
        status=original.status_of(body.enabled, status),
        delay=body.delay_time,
        time_field="scheduledTime" if body.scheduled_time is not None else "runAt",
    )


def _run_at(body: JobCreate | JobUpdate, timezone: str, now_ms: int, limits: Limits) -> int | None:
    """Unix ms of ``runAt`` (ISO-8601, read in the job's ``timezone``) or of the original's
    ``scheduledTime``; None if neither. A ``yyyyMMddHHmmss`` is read in the body's ``timezone``
    when it names one, else in the gateway's (the original read it in the server's local time).
    """
    if body.run_at is not None:
        return parse_run_at(body.run_at, timezone, now_ms)
    if body.scheduled_time is None:
        return None
    wall = check_timezone(limits.local_timezone if body.timezone is None else body.timezone)
    latest = now_ms + int(RUN_AT_MAX_AHEAD.total_seconds() * 1000)
    return original.parse_scheduled_time(body.scheduled_time, wall, latest)


def job_id_for(body: JobCreate, idempotency_key: str | None) -> str:
    """The id of a new job: the body's ``jobId``, else one fixed by the Idempotency-Key."""
    if body.job_id is not None:
        return check_job_id(body.job_id)
    if idempotency_key:
        return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, idempotency_key))
    return str(uuid.uuid4())


def merge_update(
    job: JobRecord, body: JobUpdate, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> Definition:
    """The job's definition after ``body``: giving ``schedule`` drops ``runAt`` and vice versa;
    ``enabled`` starts or stops it, as the original's did."""
    timing = {
        "schedule": body.schedule,
        "runAt": body.run_at,
        "scheduledTime": body.scheduled_time,
        "delayTime": body.delay_time,
    }
    if sum(value is not None for value in timing.values()) > 1:
        if body.scheduled_time is None and body.delay_time is None:
            _timing(body.schedule, body.run_at)
        original.require_timing(None, timing)
    current = original.RECURRING if job.schedule is not None else original.ONE_TIME
    if body.type not in (None, current) and not (
        body.type == original.ONE_TIME_RELATIVE and current == original.ONE_TIME
    ):
        raise invalid(
            f"type: job {job.job_id!r} is {current}; a job's type cannot change (give a "
            "schedule to make it recurring, or runAt to make it one-time)"
        )
    timezone = check_timezone(body.timezone if body.timezone is not None else job.timezone)
    schedule, run_at = job.schedule, job.run_at
    if body.schedule is not None:
        schedule, run_at = check_schedule(body.schedule, timezone, limits), None
    elif body.run_at is not None or body.scheduled_time is not None:
        schedule, run_at = None, _run_at(body, timezone, now_ms, limits)
        require_future(run_at, now_ms, "runAt" if body.run_at is not None else "scheduledTime")
    elif body.delay_time is not None:
        schedule, run_at = None, now_ms + original.parse_delay(body.delay_time)
    elif schedule is not None and body.timezone is not None:
        schedule = check_schedule(schedule, timezone, ALLOW_ALL)
    status = job.status
    if status == COMPLETED and (schedule, run_at) != (job.schedule, job.run_at):
        status = RUNNING  # a finished one-shot given a new time runs again
    if body.enabled is not None:
        status = _enabled(job, body.enabled, status, run_at, now_ms)
    return Definition(
        name=check_name(body.name) if body.name is not None else job.name,
        schedule=schedule,
        run_at=run_at,
        timezone=timezone,
        payload=check_payload(body.payload) if body.payload is not None else job.payload,
        status=status,
    )


def _enabled(job: JobRecord, enabled: bool, status: str, run_at: int | None, now_ms: int) -> str:
    """The status ``enabled`` asks for; a one-shot whose time has passed cannot run again."""
    if not enabled:
        return STOPPED
    if status != RUNNING and run_at is not None and run_at <= now_ms:
        raise ApiError(
            409,
            "conflict",
            f"enabled: job {job.job_id!r} was due at {iso(run_at, job.timezone)}, which has "
            "passed; give a new scheduledTime (or runAt) to run it again",
        )
    return RUNNING


def chat_of(payload: dict[str, Any]) -> str | None:
    """The chat a job's payload targets (``chatId``, or ``phoneNumber`` — or the original's
    ``context.requestedBy`` — as ``<digits>@c.us``)."""
    chat = payload.get("chatId")
    if isinstance(chat, str) and chat.strip():
        return chat.strip()
    context = payload.get("context")
    number = payload.get("phoneNumber")
    if number is None and isinstance(context, dict):
        number = context.get("requestedBy")
    digits = "".join(ch for ch in number if ch.isdigit()) if isinstance(number, str) else ""
    return f"{digits.removeprefix('00')}@c.us" if digits else None


def iso(ms: int, timezone: str) -> str:
    """ISO-8601 with the offset of ``timezone``; milliseconds only when there are some."""
    moment = datetime.fromtimestamp(ms / 1000, zone(timezone))
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")

"""The original ASPRI v2's job fields, so its scripts and MCP clients work unchanged.

The original took ``type`` (``recurring`` | ``one-time`` | ``one-time-relative``),
``scheduledTime`` (Unix ms, or ``yyyyMMddHHmmss`` in the server's local time), ``delayTime``
(``2h3m4s``) and ``enabled``; it answered with ``id``, ``type``, ``enabled``, ``executed``,
``executedAt`` and a ``scheduledTime`` formatted ``yyyyMMddHHmmss``. Here its local time is
``ASPRI_TIMEZONE``. These map onto ASPRI's own fields (``schedule``/``runAt``/``status``),
which stay the source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from aspri.api.common import ApiError
from aspri.schemas.api import JobStats
from aspri.schemas.cron import COMPLETED, RUNNING, JobRecord, zone

RECURRING = "recurring"
ONE_TIME = "one-time"
ONE_TIME_RELATIVE = "one-time-relative"

_STAMP = re.compile(r"\d{14}")
_DURATION = re.compile(r"(?:(\d{1,4})h)?(?:(\d{1,2})m)?(?:(\d{1,2})s)?")
MAX_DELAY_HOURS = 8760
"""A year, as the original allowed."""


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def parse_scheduled_time(value: int | str, timezone: str, latest_ms: int) -> int:
    """Unix ms of ``scheduledTime``: Unix ms as given, or ``yyyyMMddHHmmss`` read in ``timezone``
    (the gateway's ``ASPRI_TIMEZONE`` unless the body names one)."""
    example = (
        f"give yyyyMMddHHmmss (14 digits, e.g. '20301221120000', read in {timezone}) or Unix "
        "milliseconds (e.g. 1924941600000)"
    )
    if isinstance(value, int):
        ms = value
    elif _STAMP.fullmatch(value):
        y, mo, d, h, mi, s = (int(value[i : i + 2 if i else 4]) for i in (0, 4, 6, 8, 10, 12))
        try:
            local = datetime(y, mo, d, h, mi, s, tzinfo=zone(timezone))
        except ValueError:
            raise invalid(
                f"scheduledTime: {value!r} is not a date and time on the calendar; {example}"
            ) from None
        ms = round(local.timestamp() * 1000)
    else:
        raise invalid(f"scheduledTime: {value[:40]!r} has the wrong format; {example}")
    if not 0 <= ms <= latest_ms:
        raise invalid(
            f"scheduledTime: {str(value)[:40]!r} is out of range; give a time between now and "
            f"about ten years ahead; {example}"
        )
    return ms


def parse_delay(value: str) -> int:
    """Milliseconds of a ``delayTime`` such as ``2h``, ``3m``, ``4s`` or ``2h3m4s``."""
    example = "write e.g. '2h', '30m', '45s' or '1h15m30s'"
    text = value.strip()
    match = _DURATION.fullmatch(text) if len(text) <= 16 else None
    if match is None or not any(match.groups()):
        raise invalid(f"delayTime: {value[:40]!r} is not a duration; {example}")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if hours > MAX_DELAY_HOURS or minutes > 59 or seconds > 59:
        raise invalid(
            f"delayTime: {value!r} is out of range: hours at most {MAX_DELAY_HOURS}, minutes "
            f"and seconds at most 59; {example}"
        )
    total = (hours * 3600 + minutes * 60 + seconds) * 1000
    if total == 0:
        raise invalid(f"delayTime: {value!r} is zero; give a positive duration; {example}")
    return total


def require_timing(kind: str | None, given: Mapping[str, object]) -> None:
    """The field the original ``type`` needs is there, and exactly one timing field is."""
    needed = {
        RECURRING: ("schedule", "a cron expression such as '0 9 * * *'"),
        ONE_TIME: ("scheduledTime", "yyyyMMddHHmmss such as '20301221120000' (or runAt)"),
        ONE_TIME_RELATIVE: ("delayTime", "a duration such as '2h3m4s'"),
    }
    present = [name for name, value in given.items() if value is not None]
    if kind is not None:
        name, example = needed[kind]
        ok = name in present or (kind == ONE_TIME and "runAt" in present)
        if not ok:
            raise invalid(f"{name}: required for a {kind} job; give {example}")
    if len(present) != 1:
        state = f"{', '.join(present)} were given" if present else "none was given"
        raise invalid(
            f"{', '.join(given)}: give exactly one ({state}): schedule (cron, recurring), "
            "runAt (ISO-8601) or scheduledTime (yyyyMMddHHmmss or Unix ms) for one run, or "
            "delayTime (e.g. '2h3m') for one run after a delay"
        )


def status_of(enabled: bool | None, status: str) -> str:
    """ASPRI's ``status`` for the original's ``enabled`` (``status`` when it is not given)."""
    if enabled is None:
        return status
    return RUNNING if enabled else "stopped"


def stamp(ms: int | None, timezone: str) -> str | None:
    """``yyyyMMddHHmmss`` in ``timezone``, as the original formatted times; None if unshowable."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, zone(timezone)).strftime("%Y%m%d%H%M%S")
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class OriginalView:
    """A job's fields as the original answered them."""

    type: str
    enabled: bool
    executed: bool
    executed_at: str | None
    scheduled_time: str | None


def original_view(job: JobRecord, timezone: str) -> OriginalView:
    one_time = job.schedule is None
    executed = one_time and job.status == COMPLETED
    return OriginalView(
        type=ONE_TIME if one_time else RECURRING,
        enabled=job.status == RUNNING,
        executed=executed,
        executed_at=stamp(job.last_run_at, timezone) if executed else None,
        scheduled_time=stamp(job.run_at, timezone) if one_time else None,
    )


def stats(jobs: list[JobRecord]) -> JobStats:
    """``GET /api/jobs/stats`` as the original counted."""
    one_time = [j for j in jobs if j.schedule is None]
    return JobStats(
        total=len(jobs),
        recurring=len(jobs) - len(one_time),
        one_time=len(one_time),
        active=sum(j.status == RUNNING for j in jobs),
        executed=sum(j.status == COMPLETED for j in one_time),
    )

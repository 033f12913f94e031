"""``/jobs`` in words: "scheduled for Tue 01 Dec 22:51", "every day at 08:00 (Europe/Berlin)".

The cron API gives ISO-8601 times in each job's own timezone and raw cron expressions; a person
reads times in their own timezone and common schedules as a sentence. Shapes not covered here
are shown verbatim, which is always right.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SHOWN = "%a %d %b %H:%M"


def when_shown(iso: str | None, zone: ZoneInfo) -> str | None:
    """An API time in the reader's timezone, or None when absent or unreadable."""
    if not iso:
        return None
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return f"{at.astimezone(zone):{SHOWN}}"


def _number(field: str, low: int, high: int) -> int | None:
    return int(field) if field.isdigit() and low <= int(field) <= high else None


def _days(field: str) -> str | None:
    """``every <days>`` for a day-of-week field: one day, a list, or Monday to Friday."""
    if field in ("1-5", "MON-FRI", "mon-fri"):
        return "every weekday"
    names = [_number(d, 0, 7) for d in field.split(",")]
    if not names or None in names:
        return None
    return "every " + ", ".join(DAYS[d % 7] for d in names if d is not None)


def schedule_text(expr: str) -> str | None:
    """Common five-field cron shapes as a phrase; None for anything else."""
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if month != "*":
        return None
    m, h = _number(minute, 0, 59), _number(hour, 0, 23)
    if m is not None and h is not None:
        at = f"at {h:02d}:{m:02d}"
        if dom == "*" and dow == "*":
            return f"every day {at}"
        if dom == "*":
            days = _days(dow)
            return f"{days} {at}" if days else None
        day = _number(dom, 1, 31)
        return f"every month on day {day} {at}" if day and dow == "*" else None
    if dom != "*" or dow != "*":
        return None
    if hour == "*" and minute == "*":
        return "every minute"
    if hour == "*" and minute.startswith("*/") and _number(minute[2:], 1, 59):
        return f"every {int(minute[2:])} minutes"
    if m is not None and hour == "*":
        return f"every hour at :{m:02d}"
    if m is not None and hour.startswith("*/") and _number(hour[2:], 1, 23):
        return f"every {int(hour[2:])} hours at :{m:02d}"
    return None


def describe_job(job: dict[str, Any], zone: ZoneInfo) -> str:
    """Two lines: the name and when it runs (times in ``zone``), then the id for /cancel."""
    status = str(job.get("status", ""))
    schedule = job.get("schedule")
    if schedule:
        phrase = schedule_text(str(schedule)) or f"on schedule {schedule}"
        when = f"{phrase} ({job.get('timezone', 'UTC')})"
        nxt = when_shown(job.get("nextRunAt"), zone)
        if status == "running" and nxt:
            when += f", next {nxt}"
        elif status != "running":
            when += f" [{status}]"
    else:
        at = when_shown(job.get("runAt"), zone) or str(job.get("runAt") or "?")
        when = {"running": f"scheduled for {at}", "completed": f"done ({at})"}.get(
            status, f"was for {at} [{status}]"
        )
    line = f"• {job.get('name', '')} — {when}"
    if job.get("problem"):
        line += f"\n  cannot run: {job['problem']}"
    return f"{line}\n  id: {job.get('jobId')}"

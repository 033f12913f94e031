"""``/remind <when> <text>``: turn the person's "when" into a cron job's schedule or run time.

Understood: ``in 10m`` / ``in 2 hours`` / ``in 1h30m``, ``at 18:30``, ``tomorrow at 9:00``,
``every day at 8:00``, ``every weekday at 9:00``, ``every monday at 9:00``, ``every 15m``,
``every hour``, and a raw 5-field cron expression (``*/30 9-17 * * 1-5``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from aspri.agents.jobtext import schedule_text

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_DAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
    "sun": 0,
    "mon": 1,
    "tue": 2,
    "wed": 3,
    "thu": 4,
    "fri": 5,
    "sat": 6,
}
_DURATION = re.compile(r"(\d+)([a-z]+)")
_DURATION_FULL = re.compile(
    r"^(?:\d+(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?))+$"
)
_CLOCK = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?$")
MAX_AHEAD = timedelta(days=3650)
"""The farthest a reminder may be set (the cron gateway takes ``runAt`` up to ~ten years)."""


class WhenError(ValueError):
    """The "when" part was not understood; the message says what is accepted."""


@dataclass(frozen=True)
class When:
    """Exactly one of ``schedule`` (cron, recurring) and ``run_at`` (one time) is set."""

    text: str
    schedule: str | None = None
    run_at: datetime | None = None

    def describe(self) -> str:
        if self.run_at is not None:
            return self.run_at.strftime("%a %d %b %H:%M")
        schedule = self.schedule or ""
        return schedule_text(schedule) or f"on schedule {schedule}"


def _clock(token: str) -> tuple[int, int]:
    match = _CLOCK.match(token.lower())
    if not match:
        raise WhenError(f"{token!r} is not a time of day; write it like 18:30")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3) == "pm" and hour < 12:
        hour += 12
    elif match.group(3) == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        raise WhenError(f"{token!r} is not a time of day")
    return hour, minute


def _duration(words: list[str]) -> tuple[int, int]:
    """Seconds of a leading duration ("10m", "1h 30m", "2 hours") and how many words it took."""
    total, used = 0, 0
    for n in range(1, min(len(words), 4) + 1):
        candidate = "".join(words[:n]).lower()
        if _DURATION_FULL.match(candidate):
            used = n
            total = sum(int(num) * _UNITS[unit] for num, unit in _DURATION.findall(candidate))
    if total <= 0:
        raise WhenError("after 'in' give a duration, like 'in 10m' or 'in 2 hours'")
    if total > MAX_AHEAD.total_seconds():
        raise WhenError(
            f"that is too far ahead; I can remind you at most {MAX_AHEAD.days} days "
            "(about ten years) from now"
        )
    return total, used


def parse(args: str, now: datetime) -> When:
    """Parse ``<when> <text>``; ``now`` is timezone-aware (the user's timezone)."""
    words = args.split()
    if not words:
        raise WhenError("usage: /remind <when> <text>, e.g. /remind in 10m take out the pizza")
    head = words[0].lower()
    if head == "in":
        seconds, used = _duration(words[1:])
        return When(_rest(words, 1 + used), run_at=now + timedelta(seconds=seconds))
    if head == "at" and len(words) > 1:
        hour, minute = _clock(words[1])
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= now:
            at += timedelta(days=1)
        return When(_rest(words, 2), run_at=at)
    if head == "tomorrow" and len(words) > 2 and words[1].lower() == "at":
        hour, minute = _clock(words[2])
        at = (now + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return When(_rest(words, 3), run_at=at)
    if head == "every" and len(words) > 1:
        return _every(words)
    if len(words) >= 5 and croniter.is_valid(" ".join(words[:5])):
        return When(_rest(words, 5), schedule=" ".join(words[:5]))
    raise WhenError(
        "I did not understand when. Try: in 10m, at 18:30, tomorrow at 9:00, "
        "every day at 8:00, every monday at 9:00, every 15m, or a cron expression"
    )


def _every(words: list[str]) -> When:
    what = words[1].lower()
    if what in ("day", "weekday", "weekend") or what in _DAYS:
        if len(words) < 4 or words[2].lower() != "at":
            raise WhenError(f"say the time too, e.g. 'every {what} at 8:00'")
        hour, minute = _clock(words[3])
        days = {"day": "*", "weekday": "1-5", "weekend": "0,6"}.get(what, str(_DAYS.get(what)))
        return When(_rest(words, 4), schedule=f"{minute} {hour} * * {days}")
    if what == "hour":
        return When(_rest(words, 2), schedule="0 * * * *")
    seconds, used = _duration(words[1:])
    if seconds % 3600 == 0 and 3600 <= seconds < 86400:
        return When(_rest(words, 1 + used), schedule=f"0 */{seconds // 3600} * * *")
    if seconds % 60 == 0 and 60 <= seconds < 3600:
        return When(_rest(words, 1 + used), schedule=f"*/{seconds // 60} * * * *")
    raise WhenError("'every' takes whole minutes below an hour or whole hours below a day")


def _rest(words: list[str], used: int) -> str:
    text = " ".join(words[used:]).strip()
    if not text:
        raise WhenError("what should I remind you of? e.g. /remind in 10m call mom")
    return text

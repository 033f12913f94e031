"""``/jobs`` in words: times in the reader's timezone, common cron shapes as phrases."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from aspri.agents.jobtext import describe_job, schedule_text

JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("0 8 * * *", "every day at 08:00"),
        ("30 7 * * 1-5", "every weekday at 07:30"),
        ("0 9 * * 1", "every Monday at 09:00"),
        ("0 9 * * 0,6", "every Sunday, Saturday at 09:00"),
        ("15 6 1 * *", "every month on day 1 at 06:15"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 * * * *", "every hour at :00"),
        ("0 */2 * * *", "every 2 hours at :00"),
        ("* * * * *", "every minute"),
        ("*/30 9-17 * * 1-5", None),
        ("0 8 * 12 *", None),
        ("0 8 * * MON", None),
        ("@daily", None),
    ],
)
def test_common_cron_shapes_read_as_phrases(expr: str, text: str | None) -> None:
    assert schedule_text(expr) == text


def test_a_one_shot_says_when_once_in_the_readers_timezone() -> None:
    job = {
        "jobId": "j1",
        "name": "Reminder: tea",
        "status": "running",
        "timezone": "UTC",
        "runAt": "2026-12-01T15:51:00+00:00",
        "nextRunAt": "2026-12-01T15:51:00+00:00",
    }
    text = describe_job(job, JAKARTA)
    assert text == "• Reminder: tea — scheduled for Tue 01 Dec 22:51\n  id: j1"
    done = describe_job({**job, "status": "completed", "nextRunAt": None}, JAKARTA)
    assert done.startswith("• Reminder: tea — done (Tue 01 Dec 22:51)")


def test_a_recurring_job_names_its_zone_and_the_next_run_in_the_readers() -> None:
    job = {
        "jobId": "j2",
        "name": "vitamins",
        "status": "running",
        "timezone": "Europe/Berlin",
        "schedule": "0 8 * * *",
        "nextRunAt": "2026-12-02T08:00:00+01:00",
    }
    assert describe_job(job, JAKARTA) == (
        "• vitamins — every day at 08:00 (Europe/Berlin), next Wed 02 Dec 14:00\n  id: j2"
    )
    odd = {**job, "schedule": "*/30 9-17 * * 1-5", "status": "stopped", "nextRunAt": None}
    assert describe_job(odd, JAKARTA).startswith(
        "• vitamins — on schedule */30 9-17 * * 1-5 (Europe/Berlin) [stopped]"
    )

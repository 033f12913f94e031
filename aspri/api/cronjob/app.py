"""The cron gateway as an ASGI app, on a given Redis client (tests run it in-process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from litestar import Litestar
from redis.asyncio import Redis

from aspri.api.access import Access
from aspri.api.common import create_gateway
from aspri.api.cronjob.registry import JobRegistry
from aspri.api.cronjob.routes import routes
from aspri.api.cronjob.validation import DEFAULT_LIMITS, Limits
from aspri.telemetry import metrics

DESCRIPTION = """\
Recurring and one-shot jobs for ASPRI. Every change is an event in the `cronjob:jobs` stream;
the scheduler fires each run once as a `cronjob:trigger` event in `cronjob:events`, which the
AI engine turns into a message (`payload.message`) or an LLM-written one (`payload.prompt`)
for `payload.chatId` or `payload.phoneNumber`.
"""


_JOB = {"jobId": "$response.body#/data/jobId"}
LINKS = [
    ("post", "/api/jobs", f"{method} {path}", _JOB)
    for method, path in (
        ("get", "/api/jobs/{jobId}"),
        ("patch", "/api/jobs/{jobId}"),
        ("delete", "/api/jobs/{jobId}"),
        ("post", "/api/jobs/{jobId}/start"),
        ("post", "/api/jobs/{jobId}/stop"),
    )
]
"""A created job's id leads to every operation on it (OpenAPI links)."""


def create_app(
    redis: Redis,
    *,
    access: Access,
    now: Callable[[], float] = time.time,
    grace_s: float = 60.0,
    snapshot_every: int | None = 10_000,
    limits: Limits = DEFAULT_LIMITS,
    watched: Sequence[str] = metrics.WATCHED,
) -> Litestar:
    """The gateway, behind ``access``; its registry is rebuilt from the stream at start."""
    registry = JobRegistry(
        redis, now=now, snapshot_every=snapshot_every, max_jobs_per_chat=limits.max_jobs_per_chat
    )
    return create_gateway(
        title="ASPRI cron gateway",
        description=DESCRIPTION,
        route_handlers=routes(registry, grace_s, limits),
        on_startup=[registry.start],
        on_shutdown=[registry.stop],
        state={"registry": registry},
        redis=redis,
        watched=watched,
        access=access,
        links=LINKS,
    )

"""The cron gateway's REST endpoints; every body is the ``{"success": ...}`` envelope."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.types import ControllerRouterHandler
from redis.exceptions import RedisError

from aspri.api.common import ApiError
from aspri.api.cronjob import original
from aspri.api.cronjob.registry import JobRegistry
from aspri.api.cronjob.validation import (
    DEFAULT_LIMITS,
    Limits,
    check_status_filter,
    iso,
    job_id_for,
    merge_update,
    parse_create,
)
from aspri.schemas.api import (
    DeletedJob,
    Failure,
    Health,
    Job,
    JobCreate,
    JobPage,
    JobStats,
    JobUpdate,
    StartedJob,
    StoppedJob,
    Success,
)
from aspri.schemas.cron import RUNNING, JobRecord, plan
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.streams.health import instances

JobPath = Annotated[str, PathParameter(name="jobId", description="The job's id.")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="A retried request with the same key has the effect and answer of the first.",
    ),
]


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the envelope of the errors a handler answers with."""
    meaning = {
        400: "A field is invalid; the message names it and says how to fix it.",
        404: "No job has this jobId.",
        409: "The request conflicts with the job's state (the message says how to resolve it).",
        503: "The event log is unreachable or too busy; retry.",
    }
    return {
        s: ResponseSpec(Failure, description=meaning[s], generate_examples=False)
        for s in (*statuses, 503)
    }


V = TypeVar("V", bound=Job)


def to_job(job: JobRecord, now_ms: int, grace_ms: int, local_tz: str = "UTC") -> Job:
    """The API view of a job; times are ISO-8601 in the job's timezone (in UTC for a job
    whose definition cannot be planned: such a job never fires and says why in ``problem``),
    and the original ASPRI v2's fields beside them (its times in ``local_tz``)."""
    tz = job.timezone if job.problem is None else "UTC"
    due = plan(job, now_ms, grace_ms).due if job.status == RUNNING else None
    old = original.original_view(job, local_tz)
    return Job(
        job_id=job.job_id,
        name=job.name,
        status=job.status,
        timezone=job.timezone,
        payload=job.payload,
        created_at=_shown(job.created_at, tz) or "",
        updated_at=_shown(job.updated_at, tz) or "",
        schedule=job.schedule,
        run_at=_shown(job.run_at, tz),
        last_run_at=_shown(job.last_run_at, tz),
        next_run_at=_shown(due, tz),
        problem=job.problem,
        id=job.job_id,
        type=old.type,
        enabled=old.enabled,
        executed=old.executed,
        executed_at=old.executed_at,
        scheduled_time=old.scheduled_time,
    )


def _shown(ms: int | None, tz: str) -> str | None:
    """``iso`` for a time a record may hold (any producer writes the registry): None when no
    calendar can show it, rather than a 500 for the whole list."""
    if ms is None:
        return None
    try:
        return iso(ms, tz)
    except (ValueError, OverflowError, OSError):
        return None


def routes(
    registry: JobRegistry, grace_s: float, limits: Limits = DEFAULT_LIMITS
) -> list[ControllerRouterHandler]:
    """The handlers, bound to one registry."""
    grace_ms = int(grace_s * 1000)
    local_tz = limits.local_timezone

    def view(job: JobRecord) -> Success[Job]:
        return Success(data=to_job(job, registry.now_ms(), grace_ms, local_tz))

    def view_as(kind: type[V], job: JobRecord) -> Success[V]:
        """The job with one of the original's flags (``started``, ``stopped``, ``deleted``)."""
        shown = to_job(job, registry.now_ms(), grace_ms, local_tz)
        return Success(data=kind(**msgspec.structs.asdict(shown)))

    @post(
        "/api/jobs",
        status_code=201,
        tags=["jobs"],
        summary="Create a job",
        responses=_errors(400, 409),
    )
    async def create_job(
        data: JSONBody[JobCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Success[Job]]:
        """Create a recurring (``schedule``) or one-shot (``runAt``) job; the original ASPRI
        v2's bodies work too (``type``, ``scheduledTime``, ``delayTime``, ``enabled``).

        ``schedule`` has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
        first (firing more than once a minute only with ``CRON_ALLOW_SECONDS=true``); at most
        200 characters. ``runAt`` is ISO-8601, between now and about ten years ahead; without an
        offset it is read in ``timezone`` (IANA, default UTC). A ``jobId`` in the body or an
        ``Idempotency-Key`` header make the create idempotent: a retry returns the first job
        (header ``Idempotent-Replayed: true``).
        """
        spec = parse_create(data, registry.now_ms(), limits)
        job, created = await registry.create(job_id_for(data, idempotency_key), spec)
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(view(job), status_code=201, headers=headers)

    @get("/api/jobs", tags=["jobs"], summary="List jobs", responses=_errors(400))
    async def list_jobs(
        status: Annotated[
            str | None, QueryParameter(description="running, stopped or completed")
        ] = None,
        offset: Annotated[int, QueryParameter(ge=0, description="Jobs to skip.")] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Jobs per page.")] = 50,
    ) -> Success[JobPage]:
        """Jobs oldest first, optionally only those with ``status``."""
        jobs = await registry.list(check_status_filter(status))
        now = registry.now_ms()
        page = [to_job(j, now, grace_ms, local_tz) for j in jobs[offset : offset + limit]]
        return Success(data=JobPage(jobs=page, total=len(jobs), offset=offset, limit=limit))

    @get("/api/jobs/stats", tags=["jobs"], summary="Count jobs", responses=_errors())
    async def job_stats() -> Success[JobStats]:
        """How many jobs there are, recurring and one-time, active (running), and one-time
        jobs already executed: the original ASPRI v2's statistics."""
        return Success(data=original.stats(await registry.list(None)))

    @get("/api/jobs/{jobId:str}", tags=["jobs"], summary="Get a job", responses=_errors(404))
    async def get_job(job_id: JobPath) -> Success[Job]:
        return view(await registry.get(job_id))

    @patch(
        "/api/jobs/{jobId:str}",
        tags=["jobs"],
        summary="Change a job",
        responses=_errors(400, 404, 409),
    )
    async def update_job(job_id: JobPath, data: JSONBody[JobUpdate]) -> Success[Job]:
        """Only the fields given change. Giving ``schedule`` turns a one-shot job into a
        recurring one and giving ``runAt`` (or ``scheduledTime``) the reverse; a completed job
        given a new time runs again. ``enabled`` starts (true) or stops (false) the job."""
        job = await registry.update(
            job_id, lambda j: merge_update(j, data, registry.now_ms(), limits)
        )
        return view(job)

    @delete(
        "/api/jobs/{jobId:str}",
        status_code=200,
        tags=["jobs"],
        summary="Delete a job",
        responses=_errors(404),
    )
    async def delete_job(
        job_id: JobPath, idempotency_key: IdempotencyKey = None
    ) -> Success[DeletedJob]:
        """Delete the job for good; returns it as it was (and ``deleted: true``). A retry with
        the same ``Idempotency-Key`` returns the same answer instead of 404."""
        return view_as(
            DeletedJob, await registry.delete(job_id, replay=idempotency_key is not None)
        )

    @post(
        "/api/jobs/{jobId:str}/start",
        status_code=200,
        tags=["jobs"],
        summary="Start a job",
        responses=_errors(404, 409),
    )
    async def start_job(job_id: JobPath) -> Success[StartedJob]:
        """Let a stopped job run again; runs missed while it was stopped are not made up."""
        return view_as(StartedJob, await registry.start_job(job_id))

    @post(
        "/api/jobs/{jobId:str}/stop",
        status_code=200,
        tags=["jobs"],
        summary="Stop a job",
        responses=_errors(404),
    )
    async def stop_job(job_id: JobPath) -> Success[StoppedJob]:
        """Pause the job; it keeps its definition and can be started again."""
        return view_as(StoppedJob, await registry.stop_job(job_id))

    @get(
        "/health",
        tags=["health"],
        summary="Health",
        responses=_errors(),
        opt={"public": True},
        security=[{}],
    )
    async def health() -> Success[Health]:
        """Whether the registry is reachable (503 if not), how many jobs it has, and whether a
        scheduler works: ``degraded`` with ``down: ["scheduler"]`` when no scheduler's health
        record is live; ``schedulers`` lists those seen within the hour."""
        try:
            state = await registry.state()
            holder = await registry.log.redis.get(keys.CRON_LEASE)
            schedulers = await instances(registry.log.redis, "scheduler")
        except (RedisError, OSError) as exc:
            raise ApiError(503, "unavailable", f"the event log is unreachable: {exc}") from None
        jobs = state.jobs.values()
        down = [] if any(s.up for s in schedulers) else ["scheduler"]
        details = {
            "jobs": len(jobs),
            "running": sum(j.status == RUNNING for j in jobs),
            "unplannable": sum(j.problem is not None for j in jobs),
            "scheduler": text(holder).split("|")[0] if holder else None,
            "schedulers": [
                {"name": s.name, "up": s.up, "lastSeen": s.last_seen} for s in schedulers
            ],
            "down": down,
            "registryLastId": registry.table.last_id,
        }
        return Success(
            data=Health(
                status="degraded" if down else "ok",
                channel="cronjob",
                engine="croniter",
                details=details,
            )
        )

    return [
        create_job,
        list_jobs,
        job_stats,
        get_job,
        update_job,
        delete_job,
        start_job,
        stop_job,
        health,
    ]

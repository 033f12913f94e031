"""The gateway's side of the job registry: commands become events, reads see every write.

Each command folds ``cronjob:jobs`` up to its end, decides on that state, and appends its event
only if the stream has not moved since (``expected_last_id``); on a conflict it decides again.
Reads catch up with the stream first, so they see every write acknowledged before them, also
the scheduler's (read-your-writes across processes).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from redis.asyncio import Redis

from aspri.api.common import ApiError
from aspri.api.cronjob.validation import Definition, chat_of, iso, require_future
from aspri.schemas import REGISTRY, Event
from aspri.schemas.cron import (
    COMPLETED,
    RUNNING,
    CronState,
    JobCreated,
    JobDeleted,
    JobRecord,
    JobStarted,
    JobStopped,
    JobUpdated,
    apply_job_event,
    next_run,
)
from aspri.streams import AppendConflict, EventLog, Table, keys

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aspri.cronjob")

Decision = Callable[[CronState], Event[Any] | None]


def not_found(job_id: str) -> ApiError:
    return ApiError(
        404, "not_found", f"jobId: no job with id {job_id!r}; list the jobs to find its id"
    )


class JobRegistry:
    """Commands and queries on the job registry, for one gateway process."""

    def __init__(
        self,
        redis: Redis,
        *,
        now: Callable[[], float] = time.time,
        snapshot_every: int | None = 10_000,
        attempts: int = 100,
        max_jobs_per_chat: int = 100,
    ) -> None:
        self.log = EventLog(redis)
        self.now = now
        self.attempts = attempts
        self.max_jobs_per_chat = max_jobs_per_chat
        self.table: Table[CronState] = Table(
            self.log,
            keys.CRON_JOBS,
            initial=CronState,
            apply=apply_job_event,
            state_type=CronState,
            name=keys.CRON_JOBS,
            snapshot_every=snapshot_every,
        )

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    async def start(self) -> None:
        # No tail: every query and command catches up first, which is all read-your-writes needs.
        await self.table.start(tail=False)

    async def stop(self) -> None:
        await self.table.stop()

    # -------------------------------------------------------------- queries

    async def state(self) -> CronState:
        """The registry including every write acknowledged so far."""
        await self.table.catch_up()
        return self.table.state

    async def get(self, job_id: str) -> JobRecord:
        job = (await self.state()).jobs.get(job_id)
        if job is None:
            raise not_found(job_id)
        return job

    async def list(self, status: str | None) -> list[JobRecord]:
        jobs = (await self.state()).jobs.values()
        chosen = [j for j in jobs if status is None or j.status == status]
        chosen.sort(key=lambda j: (j.created_at, j.job_id))
        return chosen

    # -------------------------------------------------------------- commands

    async def create(self, job_id: str, spec: Definition) -> tuple[JobRecord, bool]:
        """Create the job; a retry with the same id and definition returns it (``False``)."""
        digest = spec.digest()
        created = True

        def decide(state: CronState) -> Event[Any] | None:
            nonlocal created
            existing = state.jobs.get(job_id)
            if existing is not None:
                if existing.digest != digest:
                    raise ApiError(
                        409,
                        "conflict",
                        f"jobId: a job with id {job_id!r} already exists with a different "
                        "definition; choose another jobId (or Idempotency-Key), or PATCH it",
                    )
                created = False
                return None
            require_future(spec.run_at, self.now_ms(), spec.time_field)
            self._check_room(state, spec, job_id)
            return self._event(JobCreated(job_id=job_id, digest=digest, **spec.fields()))

        await self._command("create", job_id, decide)
        return self._current(job_id), created

    async def update(self, job_id: str, merge: Callable[[JobRecord], Definition]) -> JobRecord:
        def decide(state: CronState) -> Event[Any] | None:
            job = state.jobs.get(job_id)
            if job is None:
                raise not_found(job_id)
            spec = merge(job)
            wanted = spec.fields()
            if all(getattr(job, name) == value for name, value in wanted.items()):
                return None
            if chat_of(spec.payload) != chat_of(job.payload):
                self._check_room(state, spec, job_id)
            return self._event(JobUpdated(job_id=job_id, **wanted))

        await self._command("update", job_id, decide)
        return self._current(job_id)

    async def delete(self, job_id: str, *, replay: bool = False) -> JobRecord:
        """Delete the job; returns it as it was. With ``replay`` (the request carries an
        Idempotency-Key), deleting a job that is already deleted answers like the first time."""
        gone: list[JobRecord] = []

        def decide(state: CronState) -> Event[Any] | None:
            job = state.jobs.get(job_id)
            if job is None:
                tombstone = state.deleted.get(job_id)
                if replay and tombstone is not None:
                    gone[:] = [tombstone]
                    return None
                raise not_found(job_id)
            gone[:] = [job]
            return self._event(JobDeleted(job_id=job_id))

        await self._command("delete", job_id, decide)
        return gone[0]

    async def start_job(self, job_id: str) -> JobRecord:
        def decide(state: CronState) -> Event[Any] | None:
            job = state.jobs.get(job_id)
            if job is None:
                raise not_found(job_id)
            if job.status == RUNNING:
                return None
            now = self.now_ms()
            if job.run_at is not None and next_run(job, max(job.cursor, now)) is None:
                verb = "ran" if job.status == COMPLETED else "was due"
                raise ApiError(
                    409,
                    "conflict",
                    f"runAt: job {job_id!r} {verb} at {iso(job.run_at, job.timezone)}, which "
                    "has passed; PATCH a new runAt (or a schedule) to run it again",
                )
            return self._event(JobStarted(job_id=job_id))

        await self._command("start", job_id, decide)
        return self._current(job_id)

    async def stop_job(self, job_id: str) -> JobRecord:
        def decide(state: CronState) -> Event[Any] | None:
            job = state.jobs.get(job_id)
            if job is None:
                raise not_found(job_id)
            if job.status != RUNNING:
                return None
            return self._event(JobStopped(job_id=job_id))

        await self._command("stop", job_id, decide)
        return self._current(job_id)

    # -------------------------------------------------------------- plumbing

    def _check_room(self, state: CronState, spec: Definition, job_id: str) -> None:
        """409 when the chat the job targets already has as many live jobs as allowed."""
        target = chat_of(spec.payload)
        if target is None:
            return
        live = sum(
            1
            for job in state.jobs.values()
            if job.status != COMPLETED and job.job_id != job_id and chat_of(job.payload) == target
        )
        if live >= self.max_jobs_per_chat:
            raise ApiError(
                409,
                "limit_reached",
                f"payload: chat {target} already has {live} jobs, the most allowed "
                "(CRON_MAX_JOBS_PER_CHAT); delete one it no longer needs first",
            )

    def _event(self, payload: Any) -> Event[Any]:
        return REGISTRY.event(payload, source="cronjob", timestamp=self.now_ms())

    def _current(self, job_id: str) -> JobRecord:
        job = self.table.state.jobs.get(job_id)
        if job is None:  # deleted by someone else right after our write
            raise not_found(job_id)
        return job

    async def _command(self, name: str, job_id: str, decide: Decision) -> None:
        """Decide on the current state and append, again and again until no one wrote between."""
        with _tracer.start_as_current_span(f"cronjob {name}") as span:
            span.set_attribute("aspri.job_id", job_id)
            for attempt in range(self.attempts):
                await self.table.catch_up()
                base = self.table.last_id
                event = decide(self.table.state)
                if event is not None:
                    try:
                        appended = await self.log.append(
                            keys.CRON_JOBS, event, expected_last_id=base
                        )
                    except AppendConflict:
                        span.add_event("append conflict", {"attempt": attempt})
                        await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                        continue
                    span.set_attribute("aspri.job_event_id", event.event_id)
                    await self.table.wait_for(appended.id)
                    log.info(
                        f"job {name}",
                        extra={"job_id": job_id, "event_id": event.event_id, "entry": appended.id},
                    )
                return
        raise ApiError(503, "unavailable", "the job registry is busy; retry the request")

"""The scheduler: fold ``cronjob:jobs``, keep the next run of every job, fire each run once.

Runs due at the same time share a bucket; a heap holds the bucket times. No polling: the loop
sleeps until the earliest bucket is due or until the registry table changes (``Table.changed``,
also set when the lease changes hands). Only the lease holder plans and fires. Which run is
due, and which missed runs are skipped, is decided by the pure ``aspri.schemas.cron.plan`` from
the folded state, and a write succeeds only if the registry is still that state (see
``fire.py``), so a restarted or newly elected scheduler continues exactly where the registry
says the last one stopped and no run is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.agents.scheduler.clock import Clock, SystemClock
from aspri.agents.scheduler.fire import Conflict, Fenced, Prepared, RunWriter, prepare, skip_record
from aspri.agents.scheduler.lease import Lease
from aspri.schemas import REGISTRY, Event
from aspri.schemas.cron import (
    RUNNING,
    CronState,
    JobRecord,
    JobRejected,
    JobSkipped,
    apply_job_event,
    job_ids_of,
    plan,
)
from aspri.streams import EventLog, Table, keys
from aspri.streams.connect import outage, wait_for_store
from aspri.telemetry.instruments import (
    FIRE_DELAY_SECONDS,
    SCHEDULER_FIRES,
    SCHEDULER_JOBS,
    SCHEDULER_JOBS_PLANNED,
)
from aspri.telemetry.metrics import CRON_JOBS_REJECTED
from aspri.telemetry.tracing import EVENT_ID

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aspri.scheduler")


def blocking_ms(redis: Redis, longest_ms: int = 5_000) -> int:
    """How long a blocking read may wait: less than the client's socket timeout, which would
    otherwise end it with an error (redis-py 8 defaults to 5 s)."""
    timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    if not timeout:
        return longest_ms
    return max(10, min(longest_ms, int(timeout * 1000) - 500))


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end.

    redis-py can swallow a cancellation that arrives while a blocking command starts
    (redis/redis-py#2028), so the cancel is repeated until the task has really ended.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


class Scheduler:
    """One scheduler process; run several for failover, only the lease holder fires."""

    def __init__(
        self,
        redis: Redis,
        *,
        owner: str = "scheduler",
        clock: Clock | None = None,
        grace_s: float = 60.0,
        lease_ttl_s: float = 10.0,
        snapshot_every: int | None = 10_000,
        trigger_stream: str = keys.CRON_EVENTS,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.grace_ms = int(grace_s * 1000)
        self.log = EventLog(redis)
        self.table: Table[CronState] = Table(
            self.log,
            keys.CRON_JOBS,
            initial=CronState,
            apply=self._apply,
            state_type=CronState,
            name=keys.CRON_JOBS,
            snapshot_every=snapshot_every,
        )
        self.wake = self.table.changed
        self._block_ms = blocking_ms(redis)
        self.lease = Lease(
            redis,
            owner,
            ttl_s=lease_ttl_s,
            on_change=self._lease_changed,
            longest_wait_ms=self._block_ms,
        )
        self.writer = RunWriter(redis, stream=trigger_stream)
        self.fired = 0
        self.skipped = 0
        self.conflicts = 0
        self.rejected = 0
        self._rejections: dict[str, Event[JobRejected]] = {}
        self._planned: dict[str, Prepared] = {}
        SCHEDULER_JOBS.set_function(lambda: len(self.table.state.jobs))
        SCHEDULER_JOBS_PLANNED.set_function(lambda: len(self._planned))
        self._buckets: dict[int, dict[str, Prepared]] = {}
        self._times: list[int] = []
        self._dirty: set[str] = set()
        self._replan_all = True
        self._stopping = False
        self._stop_asked = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()

    # -------------------------------------------------------------- lifecycle

    def request_stop(self) -> None:
        """Finish the current step, give the lease up and return from ``run``."""
        self._stopping = True
        self._stop_asked.set()
        self.wake.set()

    async def run(self) -> None:
        """Fire due runs until ``request_stop``; cancelling instead acts like a crash. While
        the event log is away it waits for it (with backoff) and then carries on from it."""
        while True:
            try:
                await self.table.start(tail=False)
                break
            except (RedisError, OSError) as exc:
                if not outage(exc) or not await self._wait_for_store(exc):
                    raise
        helpers = [
            asyncio.create_task(self.lease.keep(), name="scheduler-lease"),
            asyncio.create_task(self._follow(), name="scheduler-follow"),
        ]
        try:
            while not self._stopping:
                try:
                    await self._step()
                except (RedisError, OSError) as exc:  # every write is at most once: try again
                    self._replan_all = True
                    if not outage(exc):
                        log.exception("scheduler step failed; retrying")
                        await asyncio.sleep(1.0)
                    elif not await self._wait_for_store(exc):
                        break
        finally:  # shielded: a crash-like cancel must not leave the lease being renewed
            await asyncio.shield(asyncio.gather(*(cancel(task) for task in helpers)))
        await self.lease.release()
        log.info("scheduler stopped", extra={"fired": self.fired, "skipped": self.skipped})

    async def _wait_for_store(self, exc: BaseException) -> bool:
        """Wait (with backoff) until the event log answers again; False if asked to stop."""
        log.warning("event log unreachable; waiting for it", extra={"error": repr(exc)})
        waiting = asyncio.create_task(wait_for_store(self.log.redis))
        stop = asyncio.create_task(self._stop_asked.wait())
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not waiting.done():
            await cancel(waiting)
            return False
        waiting.result()
        log.info("event log reachable again; planning from the registry")
        return True

    # -------------------------------------------------------------- the loop

    async def _follow(self) -> None:
        """Fold new registry events as they come; ``Table.changed`` then wakes the loop."""
        redis = self.log.redis
        while True:
            try:
                await redis.xread(
                    {keys.CRON_JOBS: self.table.last_id}, count=1, block=self._block_ms
                )
                await self._quiet.wait()  # while firing, the loop folds its own records after
                await self.table.catch_up()
            except (RedisError, OSError) as exc:
                if outage(exc):  # the loop says so; wait for the store quietly
                    await wait_for_store(redis)
                    continue
                log.warning("registry tail failed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    def _apply(self, state: CronState, event: Event[Any]) -> None:
        apply_job_event(state, event)
        self._dirty.update(job_ids_of(event))

    def _lease_changed(self) -> None:
        self._replan_all = True
        self.wake.set()

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def _step(self) -> None:
        self.wake.clear()
        if not self.lease.held:
            self._forget_plans()
            await self.clock.sleep_until(math.inf, self.wake)
            return
        await self.table.catch_up()  # decide on the registry as it is now
        now = self._now_ms()
        skips = self._replan(now)
        if self._rejections:  # recorded first; the next step plans on the state that has them
            await self._reject()
            self._dirty.update(s.data.job_id for s in skips)
            return
        fires = self._take_due(now, skips)
        if fires or skips:
            await self._write(fires, skips, now)
            await self.table.catch_up()  # fold our own records before planning the next runs
            return
        times = self._times
        while times and times[0] not in self._buckets:
            heapq.heappop(times)  # its runs were planned again: do not wake up for it
        await self.clock.sleep_until(times[0] / 1000 if times else math.inf, self.wake)

    # -------------------------------------------------------------- plans

    def _forget_plans(self) -> None:
        self._planned.clear()
        self._buckets.clear()
        self._times.clear()

    def _unplan(self, job_id: str) -> None:
        old = self._planned.pop(job_id, None)
        if old is not None:
            bucket = self._buckets.get(old.scheduled)
            if bucket is not None:
                bucket.pop(job_id, None)
                if not bucket:
                    del self._buckets[old.scheduled]

    def _plan_job(self, job: JobRecord, now: int, skips: list[Event[JobSkipped]]) -> None:
        """Prepare the job's next run (runs due together share a bucket); record missed runs."""
        self._unplan(job.job_id)
        if job.status != RUNNING:
            return
        if job.problem is not None:
            if not job.rejected:
                self._rejection(job, job.problem)
            return
        try:
            due, skip = plan(job, now, self.grace_ms)
            run = prepare(job, due) if due is not None else None
        except Exception as exc:  # anything a definition can make croniter or datetime raise
            self._rejection(job, f"{type(exc).__name__}: {exc}"[:300])
            return
        if skip is not None:
            skips.append(skip_record(job, skip))
        if run is not None:
            self._restore([run])

    def _rejection(self, job: JobRecord, reason: str) -> None:
        data = JobRejected(job_id=job.job_id, reason=reason, defined_at=job.updated_at)
        self._rejections[job.job_id] = REGISTRY.event(data, source="scheduler")

    async def _reject(self) -> None:
        """Record why jobs cannot be planned (once per definition, whoever holds the lease)."""
        rejections, self._rejections = list(self._rejections.values()), {}
        for event in rejections:
            job = event.data
            appended = await self.log.append(
                keys.CRON_JOBS,
                event,
                idempotency_key=f"cronjob:rejected:{job.job_id}:{job.defined_at}",
            )
            if appended.duplicate:
                continue
            self.rejected += 1
            CRON_JOBS_REJECTED.inc()
            log.warning(
                "job rejected: its definition cannot be planned",
                extra={"job_id": job.job_id, "reason": job.reason, "entry": appended.id},
            )

    def _restore(self, runs: list[Prepared]) -> None:
        """Plan prepared runs (also those of a refused write: the next step folds what was
        written meanwhile, which replans the jobs it touched, our own written runs included)."""
        for run in runs:
            if run.job_id not in self._planned:
                self._planned[run.job_id] = run
                bucket = self._buckets.get(run.scheduled)
                if bucket is None:
                    bucket = self._buckets[run.scheduled] = {}
                    heapq.heappush(self._times, run.scheduled)
                bucket[run.job_id] = run

    def _replan(self, now: int) -> list[Event[JobSkipped]]:
        """Plan the jobs that changed (all of them after a lease change)."""
        jobs = self.table.state.jobs
        ids: Iterable[str] = self._dirty
        if self._replan_all:
            self._forget_plans()
            ids, self._replan_all = list(jobs), False
        self._dirty = set()
        skips: list[Event[JobSkipped]] = []
        for job_id in ids:
            job = jobs.get(job_id)
            if job is None:
                self._unplan(job_id)
            else:
                self._plan_job(job, now, skips)
        if len(self._times) > 2 * len(self._buckets) + 1024:
            self._times = list(self._buckets)
            heapq.heapify(self._times)
        return skips

    def _take_due(self, now: int, skips: list[Event[JobSkipped]]) -> list[Prepared]:
        """The runs due now, whole buckets at a time; late ones go through ``plan`` again."""
        fires: list[Prepared] = []
        for _ in range(2):  # the second pass takes what replanning the late runs made due
            late: list[str] = []
            while self._times and self._times[0] <= now:
                due = heapq.heappop(self._times)
                bucket = self._buckets.pop(due, None)
                if not bucket:
                    continue
                for job_id in bucket:
                    del self._planned[job_id]
                if now - due <= self.grace_ms:
                    fires.extend(bucket.values())
                else:
                    late.extend(bucket)
            if not late:
                break
            jobs = self.table.state.jobs
            for job_id in late:  # held up past the grace period
                job = jobs.get(job_id)
                if job is not None:
                    self._plan_job(job, now, skips)
        return fires

    async def _write(self, fires: list[Prepared], skips: list[Event[JobSkipped]], now: int) -> None:
        with _tracer.start_as_current_span("scheduler fire") as span:
            span.set_attribute("aspri.runs", len(fires))
            span.set_attribute("aspri.skips", len(skips))
            if len(fires) == 1:  # the usual tick: this trace is that trigger's
                span.set_attribute(EVENT_ID, fires[0].event_id)
            self._quiet.clear()
            try:
                await self.writer.write(self.lease.token, self.table.last_id, fires, skips)
            except Fenced:
                log.warning("lease lost while firing; another scheduler continues")
                self.lease.lost()
                return
            except Conflict:  # the registry moved under us: fold it and decide again
                span.add_event("registry changed; deciding again")
                self.conflicts += 1
                self._restore(fires)
                self._dirty.update(s.data.job_id for s in skips)
                return
            finally:
                self._quiet.set()
        self.fired += len(fires)
        SCHEDULER_FIRES.inc(len(fires))
        for run in fires:
            FIRE_DELAY_SECONDS.observe(max(0, now - run.scheduled) / 1000)
        for skipped in skips:
            self.skipped += skipped.data.count
            log.info(
                "job runs skipped",
                extra={
                    "job_id": skipped.data.job_id,
                    "first_scheduled_time": skipped.data.first_scheduled_time,
                    "last_scheduled_time": skipped.data.last_scheduled_time,
                    "count": skipped.data.count,
                },
            )
        if len(fires) > 100:
            log.info("jobs fired", extra={"runs": len(fires), "late_ms": now - fires[0].scheduled})
            return
        for run in fires:
            extra = {"job_id": run.job_id, "scheduled_time": run.scheduled}
            log.info(
                "job fired",
                extra=extra | {"event_id": run.event_id, "late_ms": now - run.scheduled},
            )

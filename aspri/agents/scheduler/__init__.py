"""The cron scheduler agent (``aspri scheduler``): fires each job run once, across restarts.

Run one or more; they elect a leader through a lease and the others wait to take over. Each
writes a health record (``aspri.streams.health``) that the cron gateway's ``/health`` reads.
"""

from __future__ import annotations

import asyncio
import signal

from aspri.agents.scheduler.clock import Clock, SystemClock
from aspri.agents.scheduler.loop import Scheduler
from aspri.config import Settings
from aspri.streams.connect import open_redis
from aspri.streams.health import Beat

__all__ = ["Clock", "Scheduler", "SystemClock", "main"]


async def _serve(settings: Settings) -> None:
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        scheduler = Scheduler(
            redis,
            owner=settings.consumer_name,
            grace_s=settings.cron_grace_s,
            lease_ttl_s=settings.cron_lease_s,
            trigger_stream=settings.cronjob_stream,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, scheduler.request_stop)
        beat = Beat(
            redis,
            "scheduler",
            settings.consumer_name,
            ttl_s=settings.health_ttl_s,
            details=lambda: {"leader": scheduler.lease.held, "fired": scheduler.fired},
        )
        async with beat:
            await scheduler.run()


def main(settings: Settings) -> int:
    """Run the scheduler until SIGINT/SIGTERM; the lease is handed over on the way out."""
    asyncio.run(_serve(settings))
    return 0

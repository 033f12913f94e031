"""``aspri cron``: the cron gateway under uvicorn on ``ASPRI_HOST:CRONJOB_PORT``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from aspri.api.access import Access
from aspri.api.cronjob.app import create_app
from aspri.api.cronjob.validation import Limits
from aspri.api.limits import server_options
from aspri.config import Settings
from aspri.streams.connect import open_redis
from aspri.telemetry import metrics

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without re-raising the stop signal after shutdown (it does by default), so the
    event log connection (and an embedded Valkey) close in order and the exit status is 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _serve(settings: Settings) -> bool:
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        limits = Limits(
            allow_seconds=settings.cron_allow_seconds,
            max_jobs_per_chat=settings.cron_max_jobs_per_chat,
            local_timezone=settings.timezone,
        )
        access = Access.from_settings(settings)
        app = create_app(
            redis,
            grace_s=settings.cron_grace_s,
            limits=limits,
            access=access,
            watched=metrics.watched(settings),
        )
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.cronjob_port,
            log_config=None,
            access_log=False,
            use_colors=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            **server_options(),
        )
        server = _Server(config)
        where = {"url": f"http://{settings.host}:{settings.cronjob_port}"}
        log.info("cron gateway listening", extra=where)
        await server.serve()
        return server.started


def main(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM, then 0. A server that cannot start (the port is taken) ends
    the process with uvicorn's startup-failure status 3; an app that fails to start, with 1."""
    return 0 if asyncio.run(_serve(settings)) else 1

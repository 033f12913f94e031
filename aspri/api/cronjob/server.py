"""``aspri cron``: the cron gateway under uvicorn on ``ASPRI_HOST:CRONJOB_PORT``."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from aspri.api.cronjob.app import create_app
from aspri.config import Settings
from aspri.streams.connect import open_redis

log = logging.getLogger(__name__)


async def _serve(settings: Settings) -> bool:
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        app = create_app(redis, grace_s=settings.cron_grace_s)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.cronjob_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        log.info(
            "cron gateway listening", extra={"host": settings.host, "port": settings.cronjob_port}
        )
        await server.serve()
        return server.started


def main(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; non-zero when the server could not start."""
    return 0 if asyncio.run(_serve(settings)) else 1

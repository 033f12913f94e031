"""Prometheus metrics of the event log, computed when scraped (nothing is paid per request).

What an operator watches in an event-sourced pipeline: how long each stream is, how far each
consumer group lags behind it, how many entries are delivered but not acked, and how many ended
in the dead-letter stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    start_http_server,
)
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from aspri.config import Settings
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.telemetry.instruments import PROCESS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CRON_JOBS_REJECTED = Counter(
    "aspri_cron_jobs_rejected",
    "Job definitions the scheduler could not plan and recorded as cronjob:rejected",
    registry=PROCESS,
)
INBOUND_THROTTLED = Counter(
    "aspri_inbound_throttled",
    "Inbound messages recorded but not handed to the engine: the sender was over the limit",
    registry=PROCESS,
)


WATCHED = (keys.WHATSAPP_MESSAGES, keys.CRON_EVENTS, keys.CRON_JOBS)
"""The watched streams under their default names."""


def watched(settings: Settings) -> tuple[str, ...]:
    """The streams an operator watches: the two work queues, by their configured names
    (``WHATSAPP_STREAM_NAME``, ``CRONJOB_STREAM_NAME``), and the job registry."""
    return (settings.whatsapp_stream, settings.cronjob_stream, keys.CRON_JOBS)


async def render(redis: Redis, streams: Sequence[str]) -> bytes:
    """The Prometheus text exposition of ``streams`` and their groups."""
    registry = CollectorRegistry()
    length = Gauge("aspri_stream_length", "Entries in the stream", ["stream"], registry=registry)
    dead = Gauge(
        "aspri_stream_dead_letters", "Entries in <stream>:dlq", ["stream"], registry=registry
    )
    lag = Gauge(
        "aspri_stream_group_lag",
        "Entries not yet delivered to the consumer group (backlog)",
        ["stream", "group"],
        registry=registry,
    )
    pending = Gauge(
        "aspri_stream_group_pending",
        "Entries delivered to the group but not acked yet",
        ["stream", "group"],
        registry=registry,
    )
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
        pipe.xlen(keys.dlq(stream))
    sizes: list[Any] = await pipe.execute()
    for i, stream in enumerate(streams):
        length.labels(stream).set(sizes[2 * i])
        dead.labels(stream).set(sizes[2 * i + 1])
        try:
            groups: list[Any] = await redis.xinfo_groups(stream)
        except ResponseError:  # the stream does not exist yet
            continue
        for group in groups:
            name = text(group["name"])
            lag.labels(stream, name).set(int(group.get("lag") or 0))
            pending.labels(stream, name).set(int(group.get("pending") or 0))
    return generate_latest(registry) + generate_latest(PROCESS)


def serve_process_metrics(host: str, port: int) -> None:
    """Serve this process's counters at ``http://host:port/metrics`` (engine, scheduler).

    A thread of prometheus_client's own, outside the event loop: it answers even while the loop
    is busy or stuck, which is when an operator looks.
    """
    start_http_server(port, addr=host, registry=PROCESS)

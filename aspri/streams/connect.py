"""Open the event log's Redis connection from the settings, and wait for it when it is away.

With ``REDIS_URL`` set, connect to it (``redis://user:password@host:port/db`` for a server with
a password or an ACL user). Without, start the embedded Valkey under ``ASPRI_DATA_DIR/valkey``
for the lifetime of the context (one process owns it; ``aspri up`` runs it once as a supervised
child and hands its URL to the services it supervises).

A service opens the connection once and keeps it: redis-py reconnects a pooled connection on
its next command, so after an outage only waiting is needed (``wait_for_store``), with backoff.
Wrong credentials are not an outage: they end the wait at once with a message naming
``REDIS_URL`` (never the password).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, NoPermissionError
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import TimeoutError as StoreTimeoutError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from aspri.streams.server import EmbeddedServer

log = logging.getLogger(__name__)

STORE_DOWN = (StoreConnectionError, StoreTimeoutError, BusyLoadingError, OSError)
"""Errors that mean the store is away for now (down, restarting, loading its AOF)."""


class StoreRefused(Exception):
    """The store answers but refuses these credentials: a configuration error, not an outage."""


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the store is away, try again" (wrong credentials do not)."""
    return isinstance(exc, STORE_DOWN) and not isinstance(exc, AuthenticationError)


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def refused(url: str, exc: Exception) -> StoreRefused:
    """The error to stop with when the server refuses the credentials in ``url``."""
    return StoreRefused(
        f"REDIS_URL ({redacted(url)}) was refused by the server ({exc}); give the right user "
        "and password in it: redis://user:password@host:port/db"
    )


async def wait_for_store(redis: Redis, url: str = "", *, wait_max_s: float = 2.0) -> None:
    """Return once the store answers PING, retrying with capped exponential backoff (0.1 s
    doubling to ``wait_max_s``, with jitter) for as long as it takes; raise ``StoreRefused``
    at once when it refuses the credentials."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(outage),
        wait=wait_exponential_jitter(multiplier=0.1, max=wait_max_s, jitter=0.1),
        reraise=True,
    )
    try:
        await retrying(redis.ping)
    except (AuthenticationError, NoPermissionError) as exc:
        raise refused(url, exc) from None


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path) -> AsyncIterator[Redis]:
    """A client on the event log, once it answers (waiting for it with backoff)."""
    server: EmbeddedServer | None = None
    if redis_url is None:
        server = EmbeddedServer(data_dir / "valkey")
        redis_url = server.start()
    # A blocking pool waits for a free connection instead of failing under a burst of work. The
    # socket timeout is set explicitly and well above every blocking read (XREAD BLOCK <= 5 s);
    # redis-py 8's default of 5 s would end those reads with spurious timeouts. One immediate
    # retry on a connection error lets a pooled connection that a restarted server dropped
    # reconnect instead of failing its next command; while the server is down it fails fast.
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=256,
        socket_timeout=30,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 1, supported_errors=(StoreConnectionError,)),
    )
    client = Redis(connection_pool=pool)
    try:
        await _first_contact(client, redis_url)
        yield client
    finally:
        await client.aclose()
        if server is not None:
            server.stop()


async def _first_contact(client: Redis, url: str) -> None:
    """Wait for the store, saying once (not at every retry) that we are waiting."""
    try:
        await client.ping()
        return
    except (AuthenticationError, NoPermissionError) as exc:
        raise refused(url, exc) from None
    except STORE_DOWN as exc:
        log.warning(
            "event log not reachable yet; waiting for it",
            extra={"redis_url": redacted(url), "error": str(exc)},
        )
    await wait_for_store(client, url)
    log.info("event log reachable", extra={"redis_url": redacted(url)})

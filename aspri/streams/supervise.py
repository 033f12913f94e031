"""Helper tasks that outlive their failures.

A helper of the runtime (the wake-up listener, the heartbeat, the ack flusher, a key gate, the
reader) that died silently would leave its agent crawling or stuck. Under ``supervise`` a failure
is logged with the task's name and the task starts again after an exponential backoff with
jitter (tenacity's policy), which starts small again once the task has run for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

log = logging.getLogger(__name__)

BACKOFF = wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.05)
"""Restart delays: 0.05 s doubling up to 5 s, plus up to 50 ms of jitter."""

HEALTHY_S = 30.0
"""A task that ran this long before failing restarts at once, with a fresh backoff."""

TRANSIENT = (RedisError, OSError)
"""Failures of the connection to Redis: expected during an outage, logged without a traceback."""


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> None:
    """Run ``run()`` until it returns, restarting it after each failure in ``retry_on``.

    Any other exception, and cancellation, ends the supervision and propagates.
    """
    while True:
        try:
            await _streak(name, run, retry_on)
            return
        except retry_on as exc:  # it failed after a healthy run: restart now, backoff anew
            _report(name, exc, 0.0)


async def _streak(
    name: str, run: Callable[[], Awaitable[None]], retry_on: tuple[type[Exception], ...]
) -> None:
    """Restart ``run`` with a growing backoff while it keeps failing soon after its start."""
    started = time.monotonic()

    def flapping(exc: BaseException) -> bool:
        return isinstance(exc, retry_on) and time.monotonic() - started < HEALTHY_S

    async def attempt() -> None:
        nonlocal started
        started = time.monotonic()
        try:
            await run()
        except Exception:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py turns a cancel that lands mid-command into a connection error: the
                # task is being cancelled, so end it instead of restarting it
                raise asyncio.CancelledError from None
            raise

    retrying = AsyncRetrying(
        retry=retry_if_exception(flapping),
        wait=BACKOFF,
        before_sleep=lambda state: _restarting(name, state),
        reraise=True,
    )
    await retrying(attempt)


def _restarting(name: str, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    if exc is not None:
        _report(name, exc, delay)


def _report(name: str, exc: BaseException, delay: float) -> None:
    message = "task %s failed (%s: %s); restarting in %.2f s"
    args = (name, type(exc).__name__, exc, delay)
    if isinstance(exc, TRANSIENT):
        log.warning(message, *args, extra={"task": name})
    else:
        log.error(message, *args, extra={"task": name}, exc_info=exc)

"""Whether the model answers: a circuit breaker, so free text is not retried against nothing.

Without it a message to an unreachable model waits through every delivery and its backoff, then
gets an apology and a dead letter. The breaker opens when the start-up probe fails or after
``FAILURES_TO_OPEN`` consecutive calls that could not reach the model (refused connection, no
such model); while open, free text is answered at once with what to do. After ``cooldown_s`` it
re-probes (half-open): if the probe passes, the next call goes to the model and closes the breaker
when it answers. Slow or overloaded answers (timeouts, 5xx) do not count: retries ride those out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from aspri.config import Settings

log = logging.getLogger(__name__)

FAILURES_TO_OPEN = 3
COOLDOWN_S = 30.0

Probe = Callable[[], Awaitable[str | None]]


def unreachable(exc: BaseException) -> str | None:
    """A short reason when ``exc`` says the model cannot be reached at all, else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # the clients wrap the transport's error (openai: ``from``, ollama: context)
        if seen is None:
            return None
        if isinstance(seen, httpx.ConnectError | ConnectionError):
            return f"no answer from the model's server ({type(seen).__name__})"
        if getattr(seen, "status_code", None) == 404:
            return f"the server has no such model ({type(seen).__name__})"
        seen = seen.__cause__ or seen.__context__
    return None


def remedy(settings: Settings) -> str:
    """What the person running the assistant can do about an unreachable model."""
    model = settings.model_name
    if settings.llm_provider == "ollama":
        return (
            f"Start Ollama (ollama serve) and pull the model (ollama pull {model}), or set "
            "LLM_PROVIDER=openai or anthropic with its key."
        )
    if settings.llm_provider == "openai":
        return (
            "Check that the server at OPENAI_BASE_URL answers and OPENAI_API_KEY is right, or "
            "set LLM_PROVIDER=ollama and start Ollama."
        )
    return "Check ANTHROPIC_API_KEY and the network, or set LLM_PROVIDER=ollama and start Ollama."


class ModelState:
    """The breaker: closed (answering), open (not answering, since ``since``), half-open."""

    def __init__(
        self,
        probe: Probe,
        *,
        clock: Callable[[], float] = time.time,
        cooldown_s: float = COOLDOWN_S,
    ) -> None:
        self._probe = probe
        self.clock = clock
        self.cooldown_s = cooldown_s
        self.answering = True
        self.since = clock()
        self.problem: str | None = None
        self.failures = 0
        self.retry_at = 0.0
        """``time.monotonic()`` after which an open breaker re-probes the model."""

    def record(self) -> dict[str, Any]:
        """The state as the engine's health record carries it, for readers in other processes
        (the web chat's header): gone with the record when no engine runs."""
        return {
            "modelReady": self.answering,
            "modelSince": int(self.since * 1000),
            "modelProblem": self.problem,
        }

    async def ready(self) -> bool:
        """True when a turn should ask the model (closed, or half-open after a good probe)."""
        if self.answering:
            return True
        if time.monotonic() < self.retry_at:
            return False
        problem = await self._probe()
        if problem is not None:
            self._open(problem)
            return False
        self.failures = FAILURES_TO_OPEN - 1  # half-open: one more failure opens it again
        self.retry_at = time.monotonic() + self.cooldown_s
        return True

    def probed(self, problem: str | None) -> None:
        """The start-up probe's verdict."""
        if problem is not None:
            self._open(problem)

    def answered(self) -> None:
        self.failures = 0
        if not self.answering:
            log.info("the model answers again")
            self.answering, self.since, self.problem = True, self.clock(), None

    def failed(self, exc: BaseException) -> None:
        reason = unreachable(exc)
        if reason is None:
            return
        self.failures += 1
        if self.failures >= FAILURES_TO_OPEN:
            self._open(reason)

    def _open(self, problem: str) -> None:
        if self.answering:
            log.warning("the model is not reachable", extra={"problem": problem})
            self.answering, self.since = False, self.clock()
        self.problem = problem
        self.retry_at = time.monotonic() + self.cooldown_s

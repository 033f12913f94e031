"""What an agent is (AgentSpec) and what it is handed (Delivery)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aspri.schemas import Event, Payload
from aspri.schemas.envelope import fields_as_text

AgentFn = Callable[[AsyncIterator[Event[Any]]], Awaitable[None]]


class HandlerTimeout(Exception):
    """A handler ran past its agent's ``timeout_s``: it was cancelled and the delivery failed."""


class Permanent(Exception):
    """Raised by a handler for an event that no retry can help (e.g. a trigger whose target
    is not a chat): the runtime dead-letters it at its first failure instead of after
    ``max_deliveries``."""


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """How one agent consumes its stream; see ``StreamApp.agent``."""

    fn: AgentFn
    stream: str
    group: str
    schema: tuple[type[Payload], ...] = ()
    concurrency: int = 1
    key: str | None = None
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    lease_ms: int = 30_000
    batch: int = 100
    block_ms: int = 2_000
    retry_backoff_s: float = 0.5
    timeout_s: float = 300.0
    """How long one handler body may run (arq's job timeout); then it is cancelled, the
    delivery counts as failed and its entry and key lease are no longer kept alive."""

    @property
    def name(self) -> str:
        return f"{self.group}/{self.stream}/{getattr(self.fn, '__name__', 'agent')}"


@dataclass(eq=False, slots=True)
class Delivery:
    """An entry handed to a worker: the raw fields, its key and how often it was delivered."""

    entry_id: str
    fields: dict[Any, Any]
    """As the server sent them (bytes), so decoding takes the registry's fast path."""
    key: str
    deliveries: int
    lease: str = ""
    deadline: float | None = None
    """Loop time by which the handler in progress must be done (None: not in a handler)."""
    prev: str | None = None
    """The entry queued just before this one in its key's queue ('' if none, None: unknown)."""
    grant: str = ""
    """The key's lease, when the read script took it for this entry."""
    confirmed: bool = False
    """The server said this entry heads its key's queue under a lease this consumer holds."""


def dead_letter_fields(d: Delivery, reason: str, spec: AgentSpec, consumer: str) -> list[str]:
    out = [
        "error",
        reason,
        "deliveries",
        str(d.deliveries),
        "originalId",
        d.entry_id,
        "originalStream",
        spec.stream,
        "group",
        spec.group,
        "consumer",
        consumer,
    ]
    for name, value in fields_as_text(d.fields).items():
        out += [name, value]
    return out

"""The async iterator an agent function loops over.

Asking for the next event acks the previous one: the handler body finished. Each event runs in a
consumer span that is a child of the producer's trace context, with ``eventId`` in every log line
and the agent's processing metrics (``aspri.telemetry.consumer``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aspri.schemas import Event, UndecodableEvent
from aspri.streams.spec import Delivery
from aspri.telemetry.consumer import Handling

if TYPE_CHECKING:
    from aspri.streams.agent import AgentRunner


class EventStream:
    """The async iterator an agent function loops over; acks the previous event on ``next``."""

    def __init__(
        self,
        runner: AgentRunner,
        queue: asyncio.Queue[Delivery | None],
        retry: Delivery | None,
        deadline: asyncio.Timeout,
    ) -> None:
        self.runner = runner
        self.deadline = deadline
        self.queue = queue
        self.retry = retry
        self.current: Delivery | None = None
        self._handling: Handling | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event[Any]:
        runner = self.runner
        self.deadline.reschedule(None)  # the handler body is over: no time limit in here
        if self.current is not None:
            done, self.current = self.current, None
            done.deadline = None
            self.close_span(None)
            await runner.finish(done)
        if runner._stopping.is_set() and not runner.burst:
            raise StopAsyncIteration
        while True:
            if self.retry is not None:
                d, self.retry = self.retry, None
            else:
                item = await self.queue.get()
                if item is None:
                    raise StopAsyncIteration
                d = item
            try:
                event = runner.decode(d)
            except UndecodableEvent as exc:
                await runner._finish_entry(d, dead_letter=f"undecodable: {exc.reason}")
                continue
            self.current = d
            self._open_span(event)
            d.deadline = asyncio.get_running_loop().time() + runner.spec.timeout_s
            self.deadline.reschedule(d.deadline)
            return event

    def _open_span(self, event: Event[Any]) -> None:
        spec = self.runner.spec
        self._handling = Handling(spec.name, spec.stream, spec.group, event)

    def close_span(self, exc: BaseException | None) -> None:
        handling, self._handling = self._handling, None
        if handling is not None:
            handling.close(exc)

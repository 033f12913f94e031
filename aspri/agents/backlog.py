"""A backlog longer than a turn can show the model is coalesced, with a record, never dropped.

When more user messages wait than the prompt window holds (the engine was down, or a sender
was let through faster than it answers), the older ones cannot be shown to the model. They are
recorded as ``chat:coalesced`` (which message ids, through which entry, why) and the next turn
answers the newest ones; that one reply stands for the whole backlog.
"""

from __future__ import annotations

import logging
from typing import Any

from aspri.agents.session import SCAN_LIMIT, Session
from aspri.schemas import REGISTRY, Event
from aspri.schemas.chat import ChatCoalesced
from aspri.streams import keys
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)


async def coalesce(log_: EventLog, session: Session, event: Event[Any]) -> bool:
    """Record the session's backlog as coalesced; False when there is none."""
    found = session.backlog()
    if found is None:
        return False
    older, through = found
    if session.overflow is not None:
        reason = f"more than {SCAN_LIMIT} entries waited unanswered"
    else:
        reason = f"older than the prompt window ({session.history_limit} messages, one session)"
    record = ChatCoalesced(
        chat_id=session.chat_id,
        cause=event.event_id,
        messages=[m.event_id for m in older],
        through=through,
        reason=reason,
    )
    await log_.append(
        keys.chat(session.chat_id),
        REGISTRY.event(record, source="engine", causation_id=event.event_id),
        idempotency_key=f"engine:{event.event_id}:coalesced:{through}",
    )
    log.warning(
        "backlog coalesced",
        extra={"chat": session.chat_id, "messages": len(older), "through": through},
    )
    return True

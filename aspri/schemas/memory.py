"""Events of ``memory:{person}``: what one person asked the assistant to keep beyond a session.

A person's long-term memory is the fold of this one stream (facts saved, facts forgotten,
session summaries), so every engine worker and every MCP server process sees the same memory,
and a restart loses nothing. A forgotten fact's ``memory:saved`` stays in the log; the fold
leaves it out of every prompt and search from then on.
"""

from __future__ import annotations

import msgspec

from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY


class MemorySaved(Payload, frozen=True, kw_only=True):
    """``memory:saved`` v1: a fact about the person, to remember across sessions."""

    person: str
    """Whose memory (the stream's person; an entry naming another person is skipped)."""
    fact_id: str
    """Short id the person and the model use to forget it (``/forget <id>``)."""
    text: str
    chat_id: str = ""
    """The chat it was said in."""
    sources: list[str] = msgspec.field(default_factory=list)
    """Event ids of the messages it came from."""
    by: str = ""
    """Who asked: ``command`` (``/remember``), ``model`` (the ``memory_save`` tool), or a client."""


class MemoryForgotten(Payload, frozen=True, kw_only=True):
    """``memory:forgotten`` v1: the fact ``factId`` is no longer used."""

    person: str
    fact_id: str
    by: str = ""
    sources: list[str] = msgspec.field(default_factory=list)


class MemorySummary(Payload, frozen=True, kw_only=True):
    """``memory:summary`` v1: a short summary of one ended session, written by the model.

    ``sessionEnd`` (the entry id in ``chat:{chatId}`` of the session's last message) names the
    session: one summary per session end, however often the end is noticed.
    """

    person: str
    chat_id: str
    session_start: str
    session_end: str
    text: str
    messages: int = 0
    model: str | None = None


REGISTRY.register("memory:saved", MemorySaved)
REGISTRY.register("memory:forgotten", MemoryForgotten)
REGISTRY.register("memory:summary", MemorySummary)

"""The fold of ``memory:{person}`` and the two writes on it (save a fact, forget one).

Each person's memory is a ``Table`` of their stream, brought up to date (only the new entries)
before every use, so every worker and MCP process answers from the same log. Entries another
producer wrote that do not fit (undecodable, another person's, an oversized fact, an unknown
fact id) are skipped and counted, never applied and never a crash.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aspri.schemas import REGISTRY, Event
from aspri.schemas.memory import MemoryForgotten, MemorySaved, MemorySummary
from aspri.streams import keys
from aspri.streams.log import EventLog
from aspri.streams.table import Table

log = logging.getLogger(__name__)

KEPT_SUMMARIES = 50
"""Summaries the fold keeps (the newest); a prompt shows at most a few of them."""


class MemoryRefused(ValueError):
    """A save or forget that cannot be done; the text says why, for a person or a model."""


@dataclass(frozen=True, slots=True)
class Fact:
    fact_id: str
    text: str
    at: int
    """Unix ms it was saved."""
    by: str
    entry_id: str


@dataclass
class Memory:
    """What the assistant remembers about one person."""

    person: str
    max_chars: int
    facts: dict[str, Fact] = field(default_factory=dict)
    """Live facts by id, oldest first."""
    forgotten: dict[str, Fact] = field(default_factory=dict)
    summaries: list[MemorySummary] = field(default_factory=list)
    """Newest last."""
    summarized: set[str] = field(default_factory=set)
    """``sessionEnd`` of every summary written: one summary per session end."""
    skipped: int = 0
    """Entries that decoded but did not fit (another person's, an oversized fact)."""
    undecodable: int = 0
    """Entries that did not decode at all (another producer's)."""
    version: int = 0
    """Bumped by every applied change (a search index re-reads the facts when it moves)."""

    def find(self, text: str) -> list[Fact]:
        """Live facts whose text contains ``text`` (case-insensitive); an exact match alone
        when there is one."""
        wanted = _plain(text)
        if not wanted:
            return []
        exact = [f for f in self.facts.values() if _plain(f.text) == wanted]
        return exact or [f for f in self.facts.values() if wanted in _plain(f.text)]


def _plain(text: str) -> str:
    return " ".join(text.casefold().split())


def apply(memory: Memory, event: Event[Any]) -> None:
    data = event.data
    if not isinstance(data, MemorySaved | MemoryForgotten | MemorySummary):
        return _skip(memory, event, "not a memory event")
    if data.person != memory.person:
        return _skip(memory, event, "names another person")
    if isinstance(data, MemorySaved):
        if not data.text.strip() or len(data.text) > memory.max_chars:
            return _skip(memory, event, "empty or oversized fact")
        if data.fact_id in memory.facts or data.fact_id in memory.forgotten:
            return  # a replayed save
        memory.facts[data.fact_id] = Fact(
            data.fact_id, data.text.strip(), event.timestamp, data.by, event.entry_id or ""
        )
    elif isinstance(data, MemoryForgotten):
        fact = memory.facts.pop(data.fact_id, None)
        if fact is None:
            return
        memory.forgotten[data.fact_id] = fact
    else:
        if data.session_end in memory.summarized:
            return
        memory.summarized.add(data.session_end)
        memory.summaries.append(data)
        del memory.summaries[:-KEPT_SUMMARIES]
    memory.version += 1


def _skip(memory: Memory, event: Event[Any], reason: str) -> None:
    memory.skipped += 1
    log.warning(
        "memory entry skipped",
        extra={"person": memory.person, "entry": event.entry_id, "reason": reason},
    )


def fact_id(key: str | None) -> str:
    """A short id, the same for a replayed save (derived from its idempotency key)."""
    if not key:
        return secrets.token_hex(4)
    return hashlib.sha256(key.encode()).hexdigest()[:8]


FACT_ID = re.compile(r"^[0-9a-f]{8}$")


class MemoryStore:
    """Memories by person, each the fold of its stream; an LRU of recent ones is a cache."""

    def __init__(
        self, log_: EventLog, *, max_chars: int, source: str, cache_size: int = 1024
    ) -> None:
        self.log = log_
        self.source = source
        self.max_chars = max_chars
        self.cache_size = cache_size
        self._tables: OrderedDict[str, Table[Memory]] = OrderedDict()

    async def load(self, person: str) -> Memory:
        """The person's memory as of the stream's end (the caller must not change it)."""
        table = self.table(person)
        await table.catch_up()
        table.state.undecodable = table.skipped
        return table.state

    def table(self, person: str) -> Table[Memory]:
        """The fold of the person's memory, as far as it was brought (``load`` brings it to
        the stream's end; a turn brings it with its session read, ``Table.absorb``)."""
        table = self._tables.get(person)
        if table is None:
            table = Table(
                self.log,
                keys.memory(person),
                initial=lambda: Memory(person, self.max_chars),
                apply=apply,
                name=keys.memory(person),
            )
            self._tables[person] = table
            while len(self._tables) > self.cache_size:
                self._tables.popitem(last=False)
        self._tables.move_to_end(person)
        return table

    async def save(
        self,
        person: str,
        text: str,
        *,
        by: str,
        chat_id: str = "",
        sources: list[str] | None = None,
        key: str | None = None,
    ) -> tuple[Fact, bool]:
        """Save a fact; returns it and whether it was already there (same text, or a
        replayed call). Raises MemoryRefused for an empty or oversized text."""
        text = " ".join(text.split())
        if not text:
            raise MemoryRefused("there is nothing to remember: the text is empty.")
        if len(text) > self.max_chars:
            raise MemoryRefused(
                f"that is {len(text)} characters; a saved fact may have at most "
                f"{self.max_chars} (MEMORY_FACT_MAX_CHARS). Save the essential part, or "
                "several shorter facts."
            )
        memory = await self.load(person)
        same = [f for f in memory.facts.values() if _plain(f.text) == _plain(text)]
        if same:
            return same[0], True
        saved = MemorySaved(
            person=person,
            fact_id=fact_id(key),
            text=text,
            chat_id=chat_id,
            sources=sources or [],
            by=by,
        )
        if saved.fact_id in memory.forgotten:  # a replayed save of a fact forgotten since
            return memory.forgotten[saved.fact_id], True
        await self._append(person, saved, key)
        memory = await self.load(person)
        return memory.facts[saved.fact_id], False

    async def forget(
        self,
        person: str,
        what: str,
        *,
        by: str,
        sources: list[str] | None = None,
        key: str | None = None,
    ) -> Fact:
        """Forget the fact with id ``what``, or the one fact whose text contains it; raises
        MemoryRefused (listing the candidates) when none or several match."""
        memory = await self.load(person)
        what = what.strip()
        if not what:
            raise MemoryRefused("say which fact to forget: its id or some of its words.")
        wanted = what.lower()
        fact = memory.facts.get(wanted)
        if fact is None and wanted in memory.forgotten:
            return memory.forgotten[wanted]  # already forgotten (or a replayed call)
        if fact is None:
            found = memory.find(what)
            if not found:
                raise MemoryRefused(f'no saved fact matches "{what[:80]}".')
            if len(found) > 1:
                listed = "; ".join(f"{f.fact_id}: {f.text[:60]}" for f in found[:5])
                raise MemoryRefused(
                    f"{len(found)} saved facts match; say which one by its id: {listed}"
                )
            fact = found[0]
        event = MemoryForgotten(person=person, fact_id=fact.fact_id, by=by, sources=sources or [])
        await self._append(person, event, key)
        await self.load(person)
        return fact

    async def summarize(self, summary: MemorySummary, key: str) -> bool:
        """Record a session summary once; False when that session end already has one."""
        memory = await self.load(summary.person)
        if summary.session_end in memory.summarized:
            return False
        appended = await self._append(summary.person, summary, key)
        return not appended.duplicate

    async def _append(
        self, person: str, payload: MemorySaved | MemoryForgotten | MemorySummary, key: str | None
    ) -> Any:
        event = REGISTRY.event(payload, source=self.source)
        appended = await self.log.append(
            keys.memory(person), event, idempotency_key=f"memory:{key}" if key else None
        )
        log.info("memory changed", extra={"type": event.type, "duplicate": appended.duplicate})
        return appended

"""``memory_search``: BM25 over a person's saved facts and their whole chat history.

The index is SQLite FTS5 in memory (in the Python standard library: no service, no extra
dependency), built from the log and brought forward from the last entry it covers before each
search, so it is always rebuildable and never the truth: losing it costs one rebuild. A chat is
indexed the first time it is searched in this process; the least recently searched chats are
dropped past ``max_chats``. Facts are re-read whenever the person's memory changed, so a
forgotten fact leaves the results at once.

A query's words that are in more than ``COMMON`` documents are left out when rarer ones are
there (their BM25 weight is small, and scoring every document holding them is what makes a
search slow); a query of common words only ranks the newest ``RECENT_DOCS`` documents.

With an ``Embeddings`` (``EMBEDDINGS_MODEL``), the BM25 candidates, every fact and the latest
messages are re-ranked by cosine similarity to the query, so a search for "my kid" can find
"my daughter Sari"; vectors are cached per document, and an embeddings failure falls back to
BM25 with the reason logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from langchain_core.embeddings import Embeddings
from redis.asyncio import Redis

from aspri.memory.store import Memory
from aspri.schemas import UndecodableEvent
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 32
RERANK_RECENT = 100
"""Latest messages of the chat that embeddings re-rank besides the BM25 candidates."""
VECTOR_CACHE = 50_000
RECENT_COMMANDS = 256
COMMON = 2_000
"""A term in more documents than this is common: its BM25 weight is small and scoring every
document it is in is what makes a search slow (a word in most of 100,000 messages: ~1 s). It
is left out of a query that has rarer terms."""
RECENT_DOCS = 5_000
"""A query of common terms only ranks the newest this many indexed documents."""


class _Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The fields of a ``whatsapp:message`` payload the index reads."""

    body: str = ""
    from_me: bool = False
    from_name: str | None = None
    from_: str = msgspec.field(default="", name="from")


_BODY = msgspec.json.Decoder(_Body)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a saved fact or a message of the chat."""

    kind: str
    """``fact`` or ``message``."""
    ref: str
    """The fact id, or the message's event id."""
    text: str
    at: int
    """Unix ms it was saved or written."""
    from_me: bool = False
    sender: str = ""
    score: float = 0.0


def query_terms(query: str) -> list[str]:
    """The query's words, lowercased, each once, as FTS5 quoted terms (no operator of the
    query survives)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_QUERY_TERMS]
    return [f'"{w}"' for w in words]


def match_expression(query: str) -> str | None:
    """The query's words as an FTS5 OR of quoted terms."""
    return " OR ".join(query_terms(query)) or None


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class SearchIndex:
    """One process's index of the chats and memories it has searched."""

    def __init__(
        self,
        log_: EventLog,
        *,
        embeddings: Embeddings | None = None,
        max_chats: int = 64,
        batch: int = 2_000,
    ) -> None:
        self.log = log_
        self.embeddings = embeddings
        self.max_chats = max_chats
        self.batch = batch
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute(
            "CREATE VIRTUAL TABLE docs USING fts5(body, scope UNINDEXED, kind UNINDEXED, "
            "ref UNINDEXED, at UNINDEXED, fromme UNINDEXED, sender UNINDEXED, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        self._chats: OrderedDict[str, str] = OrderedDict()
        """Chat id → the last entry of ``chat:{chatId}`` indexed."""
        self._commands: dict[str, OrderedDict[str, None]] = {}
        """Chat id → event ids of its latest slash commands (their replies are not indexed)."""
        self._facts: dict[str, int] = {}
        """Person → the memory version whose facts are indexed."""
        self._vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = asyncio.Lock()
        self._last_rowid = 0
        # XRANGE replies as flat lists, without redis-py's per-entry conversion (as Table does)
        self._raw = Redis(connection_pool=log_.redis.connection_pool)
        self._raw.set_response_callback("XRANGE", lambda response, **_: response)

    async def sync_chat(self, chat_id: str) -> int:
        """Index the chat's messages written since the last sync; returns how many."""
        scope = keys.chat(chat_id)
        cursor = self._chats.get(chat_id, "0-0")
        added = 0
        commands = self._commands.setdefault(chat_id, OrderedDict())
        while True:
            raw: Any = await self._raw.xrange(scope, f"({cursor}", "+", count=self.batch)
            if not raw:
                break
            rows = []
            for entry_id, flat in raw:
                message = self._message(entry_id, flat)
                if message is None:
                    continue
                event_id, at, cause, data = message
                if not data.from_me and data.body.lstrip().startswith("/"):
                    commands[event_id] = None  # a slash command is not conversation,
                    if len(commands) > RECENT_COMMANDS:  # nor is its reply
                        commands.popitem(last=False)
                    continue
                if data.from_me and cause in commands:
                    continue
                who = "" if data.from_me else (data.from_name or data.from_)
                rows.append((data.body, scope, "message", event_id, at, int(data.from_me), who))
            cursor = text(raw[-1][0])
            await asyncio.to_thread(self._insert, rows)
            added += len(rows)
            if len(raw) < self.batch:
                break
        self._chats[chat_id] = cursor
        self._chats.move_to_end(chat_id)
        while len(self._chats) > self.max_chats:
            old, _ = self._chats.popitem(last=False)
            self._commands.pop(old, None)
            await asyncio.to_thread(self._delete, keys.chat(old))
        return added

    async def sync_facts(self, memory: Memory) -> None:
        """Index the person's live facts, if their memory changed since the last sync."""
        if self._facts.get(memory.person) == memory.version:
            return
        scope = keys.memory(memory.person)
        rows = [(f.text, scope, "fact", f.fact_id, f.at, 0, "") for f in memory.facts.values()]
        await asyncio.to_thread(self._replace, scope, rows)
        self._facts[memory.person] = memory.version

    async def search(
        self, query: str, memory: Memory, chat_id: str, *, limit: int = 5
    ) -> list[Hit]:
        """The best ``limit`` facts and messages of this person and chat for ``query``."""
        async with self._lock:
            await self.sync_facts(memory)
            await self.sync_chat(chat_id)
            scopes = (keys.memory(memory.person), keys.chat(chat_id))
            wide = limit if self.embeddings is None else max(limit * 10, 50)
            hits = await asyncio.to_thread(self._bm25, query, scopes, wide)
            if self.embeddings is None:
                return hits[:limit]
            extra = await asyncio.to_thread(self._recent, scopes)
        try:
            return await self._rerank(query, hits, extra, limit)
        except Exception as exc:
            log.warning("embeddings failed; BM25 order kept", extra={"error": repr(exc)[:300]})
            return hits[:limit]

    def _message(self, entry_id: Any, flat: list[Any]) -> tuple[str, int, str, _Body] | None:
        """A ``whatsapp:message`` entry with text, as (eventId, timestamp, causationId, body);
        None for anything else. Only the fields the index needs are decoded (a rebuild reads
        the whole chat); v1 and v2 share them, another version goes through the registry."""
        pairs = iter(flat)
        fields = dict(zip(pairs, pairs, strict=False))
        if fields.get(b"type") != b"whatsapp:message":
            return None
        try:
            if fields.get(b"v", b"1") in (b"1", b"2"):
                data = _BODY.decode(fields.get(b"data") or b"{}")
            else:
                event = self.log.registry.from_fields(fields, entry_id=text(entry_id))
                m = event.data
                data = _Body(body=m.body, from_me=m.from_me, from_name=m.from_name, from_=m.from_)
        except (msgspec.MsgspecError, UndecodableEvent, AttributeError):
            return None
        if not data.body.strip():
            return None
        event_id = text(fields.get(b"eventId") or entry_id)
        cause = fields.get(b"causationId")
        at = int(fields.get(b"timestamp") or 0)
        return event_id, at, "" if cause is None else text(cause), data

    # ------------------------------------------------------------------ sqlite (in a thread)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._last_rowid = self.db.execute("SELECT max(rowid) FROM docs").fetchone()[0] or 0

    def _delete(self, scope: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM docs WHERE scope = ?", (scope,))

    def _replace(self, scope: str, rows: list[tuple[Any, ...]]) -> None:
        with self.db:
            self.db.execute("DELETE FROM docs WHERE scope = ?", (scope,))
        self._insert(rows)

    def _bm25(self, query: str, scopes: tuple[str, str], limit: int) -> list[Hit]:
        terms = query_terms(query)
        found = {t: self._count(t) for t in terms}
        rare = [t for t in terms if 0 < found[t] <= COMMON]
        common = [t for t in terms if found[t] > COMMON]
        if not rare and not common:
            return []
        since = 0 if rare else self._last_rowid - RECENT_DOCS
        rows = self.db.execute(
            "SELECT kind, ref, body, at, fromme, sender, bm25(docs) FROM docs "
            "WHERE docs MATCH ? AND rowid > ? AND scope IN (?, ?) ORDER BY bm25(docs) LIMIT ?",
            (" OR ".join(rare or common), since, *scopes, limit),
        ).fetchall()
        return [_hit(row, -row[6]) for row in rows]

    def _count(self, term: str) -> int:
        """Documents containing ``term``, counted up to ``COMMON + 1`` (cheap: no scoring)."""
        row = self.db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM docs WHERE docs MATCH ? LIMIT ?)",
            (term, COMMON + 1),
        ).fetchone()
        return int(row[0])

    def _recent(self, scopes: tuple[str, str]) -> list[Hit]:
        facts = self.db.execute(
            "SELECT kind, ref, body, at, fromme, sender FROM docs WHERE scope = ?", (scopes[0],)
        ).fetchall()
        recent = self.db.execute(
            "SELECT kind, ref, body, at, fromme, sender FROM docs WHERE scope = ? "
            "ORDER BY rowid DESC LIMIT ?",
            (scopes[1], RERANK_RECENT),
        ).fetchall()
        return [_hit(row, 0.0) for row in facts + recent]

    # ------------------------------------------------------------------ embeddings

    async def _rerank(self, query: str, hits: list[Hit], extra: list[Hit], limit: int) -> list[Hit]:
        assert self.embeddings is not None
        candidates = list({(h.kind, h.ref): h for h in [*hits, *extra]}.values())
        if not candidates:
            return []
        missing = [h for h in candidates if (h.kind, h.ref) not in self._vectors]
        if missing:
            vectors = await self.embeddings.aembed_documents([h.text for h in missing])
            for h, v in zip(missing, vectors, strict=True):
                self._vectors[(h.kind, h.ref)] = v
        wanted = await self.embeddings.aembed_query(query)
        scored = [
            replace(h, score=round(cosine(wanted, self._vectors[(h.kind, h.ref)]), 4))
            for h in candidates
        ]
        for h in candidates:
            self._vectors.move_to_end((h.kind, h.ref))
        while len(self._vectors) > VECTOR_CACHE:
            self._vectors.popitem(last=False)
        scored.sort(key=lambda h: h.score, reverse=True)
        return scored[:limit]


def _hit(row: tuple[Any, ...], score: float) -> Hit:
    kind, ref, body, at, fromme, sender = row[:6]
    return Hit(str(kind), str(ref), str(body), int(at), bool(fromme), str(sender), round(score, 4))

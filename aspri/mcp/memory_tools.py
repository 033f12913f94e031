"""The three memory tools: save a fact, forget one, search facts and the whole chat history.

They act for the person of the turn, which the engine puts in the request's ``_meta``
(``person``, ``chatId``, and ``turnCause``, the message a saved fact came from) from the
turn's principal: no argument names a person or a chat, so
whatever the model asks, a contact's turn reads and writes only that contact's memory and chat.
A call without that ``_meta`` (a client that is not the engine) is refused. The memory is the
fold of ``memory:{person}`` in the event log, read from the same store as the engine.

Annotations are evaluated when the tools are defined (no ``from __future__ import
annotations``): FastMCP builds the schemas from them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.config import Settings
from aspri.mcp import meta
from aspri.mcp.meta import ToolContext
from aspri.mcp.models import Out
from aspri.mcp.whatsapp_tools import IdempotencyKey
from aspri.memory.embed import build_embeddings
from aspri.memory.index import SearchIndex
from aspri.memory.store import MemoryRefused, MemoryStore
from aspri.streams.log import EventLog


class SavedFact(Out):
    fact_id: str = Field(description="Id of the fact (to forget it later).")
    text: str
    duplicate: bool = Field(
        False, description="True when this fact was already saved: nothing new was written."
    )


class ForgottenFact(Out):
    fact_id: str
    text: str = Field(description="The fact that is no longer remembered.")


class Found(Out):
    kind: str = Field(description="fact (a saved fact) or message (from the chat history).")
    id: str = Field(description="The fact id, or the message's event id.")
    text: str
    at: str = Field(description="When it was saved or written (ISO-8601, UTC).")
    from_me: bool = Field(False, description="True for the assistant's own messages.")
    sender: str = ""
    score: float = Field(description="Relevance; higher is better.")


class SearchResults(Out):
    results: list[Found] = Field(description="Best first.")
    ranking: str = Field(description="bm25 (keywords) or embeddings.")


class MemoryBackend:
    """This process's memory store and search index, on a client opened at first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._log: EventLog | None = None
        self._store: MemoryStore | None = None
        self._index: SearchIndex | None = None

    def parts(self) -> tuple[MemoryStore, SearchIndex]:
        if self._store is None or self._index is None:
            if not self.settings.redis_url:
                raise MemoryRefused("memory is not available: this MCP server has no REDIS_URL.")
            self._log = EventLog(Redis.from_url(self.settings.redis_url))
            self._store = MemoryStore(
                self._log, max_chars=self.settings.memory_fact_max_chars, source="mcp"
            )
            self._index = SearchIndex(self._log, embeddings=build_embeddings(self.settings))
        return self._store, self._index

    async def aclose(self) -> None:
        if self._log is not None:
            await self._log.redis.aclose()


def _turn(ctx: ToolContext) -> tuple[str, str]:
    person, chat = meta.turn_value(ctx, "person"), meta.turn_value(ctx, "chatId")
    if person is None or chat is None:
        raise MemoryRefused(
            "memory tools work only inside a conversation: the caller must name the person "
            "and chat of the turn in _meta (person, chatId)."
        )
    return person, chat


@contextmanager
def _reachable() -> Iterator[None]:
    """A store error becomes the tool's refusal, which the model can read and say."""
    try:
        yield
    except RedisError as exc:
        raise MemoryRefused(f"memory is not reachable right now ({type(exc).__name__}).") from None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def register(server: FastMCP, backend: MemoryBackend) -> None:
    """Add the memory tools to ``server``."""
    max_chars = backend.settings.memory_fact_max_chars

    @server.tool(
        title="Remember a fact",
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False),
    )
    async def memory_save(
        text: Annotated[
            str,
            Field(
                min_length=1,
                coerce_numbers_to_str=True,
                description=f"The fact, short and self-contained, in the person's words or "
                f"yours, e.g. 'Their daughter is called Sari'. At most {max_chars} characters.",
            ),
        ],
        ctx: ToolContext,
        idempotencyKey: IdempotencyKey = None,
    ) -> SavedFact:
        """Remember a lasting fact about the person you are talking with, for future
        conversations: names, preferences, dates, plans they told you about.

        Use it when they tell you something worth knowing next week, or ask you to remember
        it. Do not save passing small talk. Saved facts are shown to you in every later
        conversation with this person.
        """
        person, chat = _turn(ctx)
        store, _ = backend.parts()
        with _reachable():
            fact, duplicate = await store.save(
                person,
                text,
                by="model",
                chat_id=chat,
                sources=[c for c in [meta.turn_value(ctx, "turnCause")] if c],
                key=meta.idempotency_key(ctx, idempotencyKey),
            )
        return SavedFact(fact_id=fact.fact_id, text=fact.text, duplicate=duplicate)

    @server.tool(
        title="Forget a fact",
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False),
    )
    async def memory_forget(
        fact: Annotated[
            str,
            Field(
                min_length=1,
                coerce_numbers_to_str=True,
                description="The fact's id (as shown in your memory, e.g. 3fa94c1e) or words "
                "of its text that match only that fact.",
            ),
        ],
        ctx: ToolContext,
        idempotencyKey: IdempotencyKey = None,
    ) -> ForgottenFact:
        """Forget a saved fact about the person, when they ask you to or it is no longer
        true (save the corrected fact afterwards). It leaves every later conversation."""
        person, _chat = _turn(ctx)
        store, _ = backend.parts()
        with _reachable():
            found = await store.forget(
                person,
                fact,
                by="model",
                sources=[c for c in [meta.turn_value(ctx, "turnCause")] if c],
                key=meta.idempotency_key(ctx, idempotencyKey),
            )
        return ForgottenFact(fact_id=found.fact_id, text=found.text)

    @server.tool(
        title="Search memory", annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False)
    )
    async def memory_search(
        query: Annotated[
            str,
            Field(
                min_length=1,
                coerce_numbers_to_str=True,
                description="Words to look for, e.g. 'daughter name' or 'dentist appointment'.",
            ),
        ],
        ctx: ToolContext,
        limit: Annotated[int, Field(ge=1, le=20, description="How many results, 1-20.")] = 5,
    ) -> SearchResults:
        """Search what this person told you before: their saved facts and every earlier
        message of your conversation with them, however old.

        Use it when they refer to something from an earlier conversation that is not in
        front of you ("what was the name of that restaurant?").
        """
        person, chat = _turn(ctx)
        store, index = backend.parts()
        with _reachable():
            memory = await store.load(person)
            hits = await index.search(query, memory, chat, limit=limit)
        return SearchResults(
            results=[
                Found(
                    kind=h.kind,
                    id=h.ref,
                    text=h.text,
                    at=_iso(h.at),
                    from_me=h.from_me,
                    sender=h.sender,
                    score=h.score,
                )
                for h in hits
            ],
            ranking="bm25" if index.embeddings is None else "embeddings",
        )

"""``memory_search`` on real Valkey: BM25 over facts and the whole chat, an index that follows
the log, embeddings from a scripted OpenAI-compatible ``/embeddings`` server, and the tools'
scope through a real MCP client session."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, post
from litestar.params import JSONBody
from redis.asyncio import Redis

from aspri.config import Settings
from aspri.memory.embed import build_embeddings
from aspri.memory.index import COMMON, SearchIndex, match_expression
from aspri.memory.store import MemoryStore
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.streams import EventLog, keys
from tests.helpers import serve_asgi
from tests.mcp.support import memory_session, text_of

CHAT = "628555000111@c.us"
OTHER = "628555000222@c.us"


async def say(log: EventLog, chat: str, body: str, *, mine: bool = False, cause: str = "") -> str:
    msg = WhatsAppMessage(id=body[:20], chat_id=chat, from_=chat, body=body, from_me=mine)
    event = REGISTRY.event(msg, source="t", causation_id=cause or None)
    await log.append(keys.chat(chat), event)
    return event.event_id


def test_a_query_becomes_quoted_terms_whatever_it_contains() -> None:
    assert (
        match_expression('wifi AND "pass*" NEAR(x') == '"wifi" OR "and" OR "pass" OR "near" OR "x"'
    )
    assert match_expression("?!  ") is None


async def test_bm25_finds_facts_and_old_messages_and_follows_the_log(redis: Redis) -> None:
    log = EventLog(redis)
    store = MemoryStore(log, max_chars=500, source="t")
    await say(log, CHAT, "the cabin wifi password is mango42")
    for i in range(50):
        await say(log, CHAT, f"chatting about the weather {i}")
    command = await say(log, CHAT, "/remember my dentist is Dr Rina")
    await say(log, CHAT, "OK, I will remember: my dentist is Dr Rina", mine=True, cause=command)
    await say(log, OTHER, "another chat's wifi password is papaya")
    fact, _ = await store.save(CHAT, "my dentist is Dr Rina", by="command")
    index = SearchIndex(log)
    hits = await index.search("wifi password", await store.load(CHAT), CHAT)
    assert [h.text for h in hits] == ["the cabin wifi password is mango42"]  # not OTHER's
    hits = await index.search("dentist", await store.load(CHAT), CHAT)
    assert [(h.kind, h.ref) for h in hits] == [("fact", fact.fact_id)]  # not the command's echo
    assert await index.search('"NEAR( AND *', await store.load(CHAT), CHAT) == []
    await store.forget(CHAT, fact.fact_id, by="command")
    await say(log, CHAT, "the new wifi password is durian7")
    hits = await index.search("dentist wifi", await store.load(CHAT), CHAT, limit=5)
    assert {h.text for h in hits} == {
        "the cabin wifi password is mango42",
        "the new wifi password is durian7",
    }
    assert await index.sync_chat(CHAT) == 0  # the search brought it forward already


@contextlib.asynccontextmanager
async def embeddings_server(seen: list[dict[str, Any]]) -> AsyncIterator[str]:
    """``POST /v1/embeddings``: 3-d vectors by topic (family, food, anything else)."""
    topics = ({"daughter", "son", "kid", "child", "sari"}, {"durian", "rice", "eat", "food"})

    def vector(text: str) -> list[float]:
        words = set(text.lower().replace("?", " ").split())
        return [float(len(words & t)) for t in topics] + [0.1]

    @post("/v1/embeddings", status_code=200)
    async def embed(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        seen.append(data)
        texts = data["input"] if isinstance(data["input"], list) else [data["input"]]
        return {
            "object": "list",
            "model": data["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": vector(t)}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    async with serve_asgi(Litestar([embed], debug=False)) as url:
        yield f"{url}/v1"


async def test_embeddings_rerank_what_keywords_miss_and_fall_back_to_bm25(redis: Redis) -> None:
    log = EventLog(redis)
    store = MemoryStore(log, max_chars=500, source="t")
    await store.save(CHAT, "Sari is in second grade", by="model")
    await say(log, CHAT, "we had durian for lunch")
    await say(log, CHAT, "my kid draws all day")
    seen: list[dict[str, Any]] = []
    async with embeddings_server(seen) as url:
        settings = Settings(
            embeddings_model="nomic-embed", embeddings_provider="openai", openai_base_url=url
        )
        index = SearchIndex(log, embeddings=build_embeddings(settings))
        hits = await index.search("daughter", await store.load(CHAT), CHAT, limit=2)
        # no word in common with either: only the embeddings find them
        assert {h.text for h in hits} == {"my kid draws all day", "Sari is in second grade"}
        assert all(h.score > 0.9 for h in hits)
        assert {r["model"] for r in seen} == {"nomic-embed"}
        calls = len(seen)
        await index.search("daughter", await store.load(CHAT), CHAT, limit=2)
        assert len(seen) == calls + 1  # only the query: document vectors are cached
    # the embeddings server is gone: BM25 answers, nothing fails
    hits = await index.search("durian", await store.load(CHAT), CHAT, limit=2)
    assert [h.text for h in hits] == ["we had durian for lunch"]


async def test_the_tools_act_only_for_the_person_the_caller_names_in_meta(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, whatsapp_url="http://127.0.0.1:9", timezone="UTC")
    owner = {"person": CHAT, "chatId": CHAT, "turnCause": "e1"}
    contact = {"person": OTHER, "chatId": OTHER}
    async with memory_session(settings) as session:
        bare = await session.call_tool("memory_search", {"query": "code"})
        assert bare.isError and "only inside a conversation" in text_of(bare)
        saved = await session.call_tool(
            "memory_save", {"text": "the safe code is 4321"}, meta=owner | {"idempotencyKey": "k"}
        )
        assert not saved.isError, text_of(saved)
        again = await session.call_tool(
            "memory_save", {"text": "the safe code is 4321"}, meta=owner | {"idempotencyKey": "k"}
        )
        assert json.loads(text_of(again))["duplicate"] is True
        found = await session.call_tool("memory_search", {"query": "safe code"}, meta=contact)
        assert json.loads(text_of(found))["results"] == []
        refused = await session.call_tool("memory_forget", {"fact": "safe code"}, meta=contact)
        assert refused.isError and "no saved fact matches" in text_of(refused)
        huge = await session.call_tool("memory_save", {"text": "x" * 501}, meta=contact)
        assert huge.isError and "at most 500 (MEMORY_FACT_MAX_CHARS)" in text_of(huge)
        mine = await session.call_tool("memory_search", {"query": "safe code"}, meta=owner)
        (hit,) = json.loads(text_of(mine))["results"]
        assert hit["kind"] == "fact" and hit["text"] == "the safe code is 4321"
    (event,) = await EventLog(Redis.from_url(redis_url)).read(keys.memory(CHAT))
    assert event.data.sources == ["e1"] and event.data.by == "model"


async def test_common_words_do_not_drown_a_search(redis: Redis) -> None:
    """A word in more than COMMON messages is left out when the query has rarer ones; a query
    of common words alone still answers, from the newest messages."""
    log = EventLog(redis)
    pipe = redis.pipeline(transaction=False)
    for i in range(COMMON + 500):
        msg = WhatsAppMessage(id=f"m{i}", chat_id=CHAT, from_=CHAT, body=f"the day {i} went by")
        pipe.xadd(keys.chat(CHAT), log.registry.to_fields(REGISTRY.event(msg, source="t")))
    await pipe.execute()
    await say(log, CHAT, "the wifi password is mango42")
    index = SearchIndex(log)
    memory = await MemoryStore(log, max_chars=500, source="t").load(CHAT)
    hits = await index.search("the wifi", memory, CHAT, limit=3)
    assert [h.text for h in hits] == ["the wifi password is mango42"]
    assert len(await index.search("the", memory, CHAT, limit=3)) == 3


async def test_each_tool_refuses_plainly_while_the_store_is_unreachable() -> None:
    """Nothing listens on the store's port (9): the model reads a refusal, the server lives on."""
    settings = Settings(
        redis_url="redis://127.0.0.1:9/0",
        whatsapp_url="http://127.0.0.1:9",
        timezone="UTC",
    )
    owner = {"person": CHAT, "chatId": CHAT}
    calls = [
        ("memory_save", {"text": "the safe code is 4321"}),
        ("memory_forget", {"fact": "safe code"}),
        ("memory_search", {"query": "code"}),
    ]
    async with memory_session(settings) as session:
        for name, args in calls:
            result = await session.call_tool(name, args, meta=owner)
            assert result.isError, name
            assert "memory is not reachable right now (ConnectionError)" in text_of(result), name

"""No model, no waiting: the breaker answers free text at once while the model is unreachable,
and the model answers again once it is back (a scripted OpenAI-compatible server that is really
stopped and started on its port, so the client sees a refused connection)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Response, post
from litestar.params import JSONBody

from aspri.agents.llm import build_model
from aspri.agents.model_state import FAILURES_TO_OPEN, ModelState, unreachable
from aspri.config import Settings
from aspri.schemas import REGISTRY, CronTrigger, Event
from aspri.streams import keys
from aspri.streams.server import free_port
from tests.agents.engine.stack import Stack, new_number
from tests.chaos.model import ScriptedLLM
from tests.helpers import serve_asgi, wait_until


@contextlib.asynccontextmanager
async def model_server(llm: ScriptedLLM, port: int) -> AsyncIterator[None]:
    @post("/v1/chat/completions", status_code=200)
    async def chat(data: JSONBody[dict[str, Any]]) -> Response[dict[str, Any]]:
        return await llm.answer(data)

    async with serve_asgi(Litestar([chat], debug=False), port):
        yield


async def test_free_text_is_answered_at_once_while_the_model_is_away(stack: Stack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    model_settings: dict[str, Any] = {
        "llm_provider": "openai",
        "openai_base_url": url,
        "openai_api_key": "k",
        "llm_model": "m",
    }
    number = new_number()
    chat = f"{number}@c.us"
    llm = ScriptedLLM()
    model = build_model(Settings(**model_settings))
    async with stack.engine(model, max_deliveries=5, **model_settings) as running:
        state = running.engine.model
        state.cooldown_s = 0.5
        # Nobody listens: the first message is retried until the breaker opens, then answered.
        await stack.say(number, "hello")
        (first,) = await stack.wait_answered(chat)
        assert first.kind == "model-offline" and first.deliveries == FAILURES_TO_OPEN
        assert first.model is None and not state.answering
        # While open, the next one is answered at its first delivery, without the model.
        began = time.monotonic()
        await stack.say(number, "still there?")
        await stack.wait_replies(chat, 2)
        offline_s = time.monotonic() - began
        await stack.say(number, "/status")
        await stack.wait_replies(chat, 3)
        async with model_server(llm, port):
            await wait_until(lambda: time.monotonic() >= state.retry_at, 10)
            await stack.say(number, "back?")
            await stack.wait_replies(chat, 4)
            await stack.say(number, "/status")
            await stack.wait_answered(chat)
    turns = await stack.turns(chat)
    replies = await stack.replies(chat)
    assert [t.kind for t in turns] == ["model-offline"] * 2 + ["command", "reply", "command"]
    assert turns[1].deliveries == 1 and offline_s < 5, offline_s
    assert "not reachable" in replies[0] and "OPENAI_BASE_URL" in replies[0]
    assert "LLM_PROVIDER" in replies[1]
    assert "Model: m (openai), not answering since" in replies[2]
    assert replies[3] == "re: back?" and turns[3].model == "m" and turns[3].deliveries == 1
    assert "Model: m (openai), answering since" in replies[4]
    assert llm.calls == 1
    dead = await stack.log.read(keys.dlq(keys.WHATSAPP_MESSAGES))
    answered = {a for t in turns for a in t.answered}
    assert not [e for e in dead if e.event_id in answered]


async def test_a_cron_prompt_gets_the_model_offline_answer_too(stack: Stack) -> None:
    """A prompt job that fires while nothing answers on the model's port: the breaker opens as
    for free text, the prompt is answered with what to do and recorded as unanswered by the
    model; the next one is answered at its first delivery; nothing goes to the dead letters."""
    settings: dict[str, Any] = {
        "llm_provider": "openai",
        "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
        "openai_api_key": "k",
        "llm_model": "m",
    }
    chat = f"{new_number()}@c.us"

    def trigger(job: str) -> Event[CronTrigger]:
        data = CronTrigger(
            job_id=job,
            job_name=f"Briefing {job}",
            scheduled_time=1_800_000_000_000,
            payload={"chatId": chat, "prompt": "Give me my morning briefing"},
        )
        return REGISTRY.event(data, source="cronjob")

    async with stack.engine(build_model(Settings(**settings)), max_deliveries=5, **settings) as w:
        state = w.engine.model
        await stack.log.append(keys.CRON_EVENTS, trigger("job-a"))
        await stack.wait_replies(chat, 1)
        assert not state.answering
        began = time.monotonic()
        await stack.log.append(keys.CRON_EVENTS, trigger("job-b"))
        await stack.wait_replies(chat, 2)
        offline_s = time.monotonic() - began
        await wait_until(lambda: w.engine.app.runners[1].processed >= 2, 20)
    turns = await stack.turns(chat)
    replies = await stack.replies(chat)
    assert [(t.kind, t.job_id, t.model) for t in turns] == [
        ("model-offline", "job-a", None),
        ("model-offline", "job-b", None),
    ]
    assert [t.deliveries for t in turns] == [FAILURES_TO_OPEN, 1] and offline_s < 5, offline_s
    assert replies[0].startswith('I could not run your scheduled prompt "Briefing job-a": my model')
    assert "not reachable" in replies[1] and "OPENAI_BASE_URL" in replies[1]
    assert await stack.log.read(keys.dlq(keys.CRON_EVENTS)) == []


async def test_a_failed_start_up_probe_opens_it_and_slow_answers_do_not() -> None:
    problems = ["no Ollama answers at http://x (ConnectError)"]

    async def probe() -> str | None:
        return problems.pop() if problems else None

    state = ModelState(probe, cooldown_s=0.0)
    state.probed("no Ollama answers at http://x (ConnectError)")
    assert not state.answering and not await state.ready()  # re-probed: still down
    assert await state.ready() and not state.answering  # half-open: one call may try
    state.answered()
    assert state.answering and state.problem is None
    for _ in range(FAILURES_TO_OPEN * 2):
        state.failed(TimeoutError("slow"))
    assert state.answering
    assert unreachable(ConnectionRefusedError()) is not None
    assert unreachable(TimeoutError()) is None

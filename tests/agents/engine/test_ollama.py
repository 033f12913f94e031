"""One real turn against Ollama (``OLLAMA_BASE_URL``, ``OLLAMA_MODEL``), when one answers.

No stand-in here: the real model through ``build_model``, the real gateways and MCP server.
Skipped, with the reason, on machines without a running Ollama that has the model.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from aspri.agents.llm import build_model, probe
from aspri.config import Settings
from tests.agents.engine.stack import Stack, new_number


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_one_real_turn_with_ollama(stack: Stack) -> None:
    env = Settings.from_env({k: v for k, v in os.environ.items() if k.startswith("OLLAMA_")})
    settings = replace(
        stack.settings,
        llm_provider="ollama",
        ollama_base_url=env.ollama_base_url,
        ollama_model=env.ollama_model,
        llm_timeout_s=300,
    )
    problem = await probe(settings)
    if problem:
        pytest.skip(f"no usable Ollama: {problem}")
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(
        build_model(settings),
        llm_provider="ollama",
        ollama_base_url=settings.ollama_base_url,
        ollama_model=settings.ollama_model,
        claim_idle_ms=300_000,
        max_deliveries=1,
    ):
        await stack.say(number, "Hi! Please answer with one short friendly sentence.")
        turns = await stack.wait_answered(chat, within=300)
    (reply,) = await stack.replies(chat)
    assert reply.strip()
    assert turns[0].kind == "reply" and turns[0].llm_calls >= 1
    assert turns[0].model == settings.ollama_model

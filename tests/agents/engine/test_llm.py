"""The provider factory and the model check (no model is called here)."""

from __future__ import annotations

from typing import Any

from langchain_anthropic import ChatAnthropic
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from litestar import Litestar, get

from aspri.agents.llm import build_model, probe
from aspri.config import Settings
from aspri.streams.server import free_port
from tests.helpers import serve_asgi


def test_each_provider_is_built_from_the_settings() -> None:
    ollama = build_model(Settings(ollama_base_url="http://gpu:11434", llm_timeout_s=33))
    assert isinstance(ollama, ChatOllama)
    assert ollama.base_url == "http://gpu:11434" and ollama.model == "qwen2.5:3b"
    assert ollama.client_kwargs == {"timeout": 33}

    openai = build_model(
        Settings(
            llm_provider="openai",
            openai_api_key="sk-test",
            openai_base_url="http://vllm:8000/v1",
            llm_model="qwen",
        )
    )
    assert isinstance(openai, ChatOpenAI)
    assert openai.model_name == "qwen" and openai.openai_api_base == "http://vllm:8000/v1"
    assert openai.max_retries == 0  # retries belong to the stream runtime

    anthropic = build_model(Settings(llm_provider="anthropic", anthropic_api_key="sk-ant"))
    assert isinstance(anthropic, ChatAnthropic)
    assert anthropic.model == "claude-3-5-haiku-latest" and anthropic.max_retries == 0


async def test_the_model_check_says_what_is_missing() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert "no Ollama answers" in (await probe(Settings(ollama_base_url=nowhere)) or "")
    assert "OPENAI_API_KEY" in (await probe(Settings(llm_provider="openai")) or "")
    assert await probe(Settings(llm_provider="anthropic", anthropic_api_key="k")) is None

    @get("/api/tags")
    async def tags() -> dict[str, Any]:  # the one Ollama endpoint the check reads
        return {"models": [{"name": "llama3.2:latest"}]}

    async with serve_asgi(Litestar([tags])) as url:
        assert await probe(Settings(ollama_base_url=url, ollama_model="llama3.2")) is None
        missing = await probe(Settings(ollama_base_url=url))
        assert missing == "Ollama has no model 'qwen2.5:3b'; run: ollama pull qwen2.5:3b"

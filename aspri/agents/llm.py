"""The chat model, chosen by ``LLM_PROVIDER``: ollama (default), openai (any compatible server),
anthropic, each with its ``*_MODEL`` and ``LLM_TEMPERATURE``. Retries are the stream runtime's
job (with backoff, then the DLQ), so the clients' own retries are off and their timeouts come
from ``LLM_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import httpx
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from aspri.config import Settings


def build_model(settings: Settings) -> BaseChatModel:
    """A chat model for ``settings.llm_provider`` (the provider packages are imported lazily)."""
    model = settings.model_name
    timeout = settings.llm_timeout_s
    temperature = settings.llm_temperature
    if settings.llm_provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=model,
            api_key=SecretStr(settings.openai_api_key or "not-needed"),
            base_url=settings.openai_base_url,
            temperature=temperature,
            timeout=timeout,
            max_retries=0,
        )
    if settings.llm_provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        return ChatAnthropic(  # type: ignore[call-arg]
            model_name=model,
            api_key=SecretStr(settings.anthropic_api_key or ""),
            temperature=temperature,
            default_request_timeout=timeout,
            max_retries=0,
        )
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model,
        base_url=settings.ollama_base_url,
        temperature=temperature,
        client_kwargs={"timeout": timeout},
    )


async def probe(settings: Settings, timeout_s: float = 2.0) -> str | None:
    """None when the configured model can answer, else a sentence saying what is missing.

    Cheap checks only (no generation): Ollama's model list, or that an API key is set.
    """
    if settings.llm_provider == "openai":
        if settings.openai_api_key or settings.openai_base_url:
            return None
        return "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
    if settings.llm_provider == "anthropic":
        if settings.anthropic_api_key:
            return None
        return "LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY"
    url = settings.ollama_base_url.rstrip("/") + "/api/tags"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
            names = {m.get("name", "") for m in response.json().get("models", [])}
    except (httpx.HTTPError, ValueError) as exc:
        return f"no Ollama answers at {settings.ollama_base_url} ({type(exc).__name__})"
    wanted = settings.model_name
    if wanted in names or f"{wanted}:latest" in names:
        return None
    return f"Ollama has no model {wanted!r}; run: ollama pull {wanted}"

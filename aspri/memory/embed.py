"""Embeddings for ``memory_search`` when ``EMBEDDINGS_MODEL`` is set, from the configured
provider: Ollama's ``/api/embed`` or any OpenAI-compatible ``/embeddings`` (``OPENAI_BASE_URL``).
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from aspri.config import Settings


def build_embeddings(settings: Settings) -> Embeddings | None:
    """None when no embeddings model is configured (search is BM25 alone)."""
    model = settings.embeddings_model
    if not model:
        return None
    if settings.embeddings_provider == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(
            model=model,
            api_key=SecretStr(settings.openai_api_key or "not-needed"),
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=0,
            # the length check tokenizes with tiktoken, whose tables are downloaded on first
            # use; texts here are short messages and capped facts
            check_embedding_ctx_length=False,
        )
    from langchain_ollama import OllamaEmbeddings

    return OllamaEmbeddings(
        model=model,
        base_url=settings.ollama_base_url,
        client_kwargs={"timeout": settings.llm_timeout_s},
    )

"""What the local stand-ins for OpenAI-compatible audio endpoints share (``speech_server``,
``transcription_server``): the answer to a wrong bearer key, and serving one on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from litestar import Litestar, Request, Response

from tests.helpers import serve_asgi


class StandIn(Protocol):
    url: str
    """The base URL a client is configured with (``…/v1``), set once it serves."""


S = TypeVar("S", bound=StandIn)


def wrong_key(request: Request[Any, Any, Any], key: str) -> Response[Any] | None:
    """OpenAI's 401 when the request's bearer key is not ``key``; None when it is."""
    if request.headers.get("authorization") == f"Bearer {key}":
        return None
    return Response({"error": {"message": "Incorrect API key provided"}}, status_code=401)


@asynccontextmanager
async def serving(stand_in: S, app: Litestar) -> AsyncIterator[S]:
    """``stand_in`` with ``app`` (its endpoints) served on a free local port."""
    async with serve_asgi(app, lifespan="off") as base:
        stand_in.url = f"{base}/v1"
        yield stand_in

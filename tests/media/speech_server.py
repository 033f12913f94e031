"""A local stand-in for an OpenAI-compatible ``POST /v1/audio/speech`` (no speech model runs on
a test machine): it checks the bearer key, records each request, and answers a real OGG/Opus
file naming the text — or, as a test sets ``mode``, a refusal, bytes that are no audio, or a stream
far larger than any voice note."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from litestar.response import Stream

from tests.media.ogg import silent_opus
from tests.media.openai_stand_in import serving, wrong_key

HUGE_CHUNK = 64 * 1024
HUGE_CHUNKS = 1024
"""64 MiB in all, far above any voice cap."""


def ogg_of(text: str) -> bytes:
    """The stand-in's "speech" for ``text``: a second of OGG/Opus silence naming the text."""
    return silent_opus(1.0, text)


@dataclass
class Speeches:
    url: str = ""
    key: str = "sk-speech"
    mode: str = "ok"
    """``ok``, ``refuse`` (HTTP 500), ``garbage`` (HTML, no audio), ``huge`` (64 MiB of OGG)."""
    received: list[dict[str, Any]] = field(default_factory=list)


def _app(stand_in: Speeches) -> Litestar:
    @post("/v1/audio/speech", status_code=200)
    async def speech(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        if (refused := wrong_key(request, stand_in.key)) is not None:
            return refused
        body = await request.json()
        stand_in.received.append(body)
        if stand_in.mode == "refuse":
            return Response({"error": {"message": "The server had an error"}}, status_code=500)
        if stand_in.mode == "garbage":
            return Response(b"<html>upstream error</html>", media_type="text/html")
        if stand_in.mode == "huge":

            async def endless() -> AsyncIterator[bytes]:
                yield b"OggS" + bytes(HUGE_CHUNK - 4)
                for _ in range(HUGE_CHUNKS - 1):
                    yield bytes(HUGE_CHUNK)

            return Stream(endless(), media_type="audio/ogg")
        return Response(ogg_of(body["input"]), media_type="audio/ogg")

    return Litestar([speech])


def speech_server() -> AbstractAsyncContextManager[Speeches]:
    stand_in = Speeches()
    return serving(stand_in, _app(stand_in))

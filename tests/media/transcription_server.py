"""A local stand-in for an OpenAI-compatible ``POST /v1/audio/transcriptions`` (no real speech
model runs on a test machine): it checks the bearer key, records the file and the model, and
answers the text it was given for those bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post

from tests.helpers import serve_asgi


@dataclass
class Transcriptions:
    url: str = ""
    key: str = "sk-transcribe"
    texts: dict[bytes, str] = field(default_factory=dict)
    """Audio bytes → the transcript to answer."""
    received: list[dict[str, Any]] = field(default_factory=list)


def _app(stand_in: Transcriptions) -> Litestar:
    @post("/v1/audio/transcriptions", status_code=200)
    async def transcribe(request: Request[Any, Any, Any]) -> Response[Any]:
        if request.headers.get("authorization") != f"Bearer {stand_in.key}":
            return Response({"error": {"message": "Incorrect API key provided"}}, status_code=401)
        form = await request.form()
        upload = form["file"]
        data = await upload.read()
        stand_in.received.append(
            {"model": form.get("model"), "filename": upload.filename, "type": upload.content_type}
        )
        if data not in stand_in.texts:
            return Response({"error": {"message": "Invalid file format."}}, status_code=400)
        return Response({"text": stand_in.texts[data]})

    return Litestar([transcribe])


@asynccontextmanager
async def transcription_server() -> AsyncIterator[Transcriptions]:
    stand_in = Transcriptions()
    async with serve_asgi(_app(stand_in), lifespan="off") as base:
        stand_in.url = f"{base}/v1"
        yield stand_in

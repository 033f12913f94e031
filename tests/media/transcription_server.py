"""A local stand-in for an OpenAI-compatible ``POST /v1/audio/transcriptions`` (no real speech
model runs on a test machine): it checks the bearer key, records the file and the model, and
answers the text it was given for those bytes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post

from tests.media.openai_stand_in import serving, wrong_key


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
        if (refused := wrong_key(request, stand_in.key)) is not None:
            return refused
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


def transcription_server() -> AbstractAsyncContextManager[Transcriptions]:
    stand_in = Transcriptions()
    return serving(stand_in, _app(stand_in))

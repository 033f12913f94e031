"""Voice notes and audio to text before the turn (``TRANSCRIPTION_PROVIDER``).

``openai``: any OpenAI-compatible ``POST {base}/audio/transcriptions`` (multipart: the file and
``model``; the answer's ``text``). ``local``: faster-whisper on this machine, an optional extra
(``local_whisper.py``). ``none``: nothing is transcribed; the message keeps the note and the
model is told it could not be transcribed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import msgspec

from aspri.config import Settings
from aspri.media.local_whisper import (
    LocalTranscriptionError,
    LocalWhisper,
    Whisper,
    load_faster_whisper,
)
from aspri.media.store import MediaStore
from aspri.schemas.media import Audio, Media, Voice

log = logging.getLogger(__name__)

OPENAI_BASE = "https://api.openai.com/v1"


class TranscriptionError(Exception):
    """The provider did not give a transcript; the message says why (no audio content)."""


class _Answer(msgspec.Struct):
    text: str


class SpeechToText(Protocol):
    """A transcription provider: the text of the audio file at ``path``, or TranscriptionError."""

    async def transcribe(self, path: Path, mime: str | None, filename: str) -> str: ...


class Transcriber:
    """One OpenAI-compatible transcription endpoint."""

    def __init__(self, settings: Settings, *, timeout_s: float = 120.0) -> None:
        base = settings.transcription_base_url or settings.openai_base_url or OPENAI_BASE
        self.url = f"{base.rstrip('/')}/audio/transcriptions"
        self.model = settings.transcription_model
        key = settings.transcription_api_key or settings.openai_api_key
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SpeechToText | None:
        """The provider ``TRANSCRIPTION_PROVIDER`` names; None for ``none``."""
        if settings.transcription_provider == "openai":
            return cls(settings)
        if settings.transcription_provider == "local":
            return LocalTranscriber(settings)
        return None

    async def transcribe(self, path: Path, mime: str | None, filename: str) -> str:
        data = await asyncio.to_thread(path.read_bytes)
        files = {"file": (filename, data, mime or "application/octet-stream")}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(
                    self.url, headers=self._headers, files=files, data={"model": self.model}
                )
        except httpx.HTTPError as exc:
            raise TranscriptionError(
                f"the transcription service is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise TranscriptionError(f"the transcription service refused ({response.status_code})")
        try:
            text = msgspec.json.decode(response.content, type=_Answer).text.strip()
        except msgspec.MsgspecError:
            raise TranscriptionError("the transcription service answered without text") from None
        log.info("audio transcribed", extra={"chars": len(text)})
        return text


class LocalTranscriber:
    """``TRANSCRIPTION_PROVIDER=local``: ``TRANSCRIPTION_LOCAL_MODEL`` through faster-whisper."""

    def __init__(
        self, settings: Settings, *, load: Callable[[str], Whisper] = load_faster_whisper
    ) -> None:
        self.whisper = LocalWhisper(settings.transcription_local_model, load=load)

    async def transcribe(self, path: Path, mime: str | None, filename: str) -> str:
        try:
            text = await self.whisper.transcribe(path)
        except LocalTranscriptionError as exc:
            raise TranscriptionError(str(exc)) from None
        log.info("audio transcribed locally", extra={"chars": len(text)})
        return text


async def with_transcript(
    transcriber: SpeechToText | None, store: MediaStore, media: Media
) -> Media:
    """An audio or voice note with its transcript, or with why there is none; anything else
    (and everything when no provider is configured) as it is. Every engine calls this before
    it records the message, so the transcript is stored with it."""
    if not isinstance(media, Audio | Voice) or transcriber is None:
        return media
    path = store.find(media.sha256 or "")
    if path is None:
        return media
    subtype = (media.mime or "audio/ogg").split(";")[0].split("/")[-1]
    filename = media.filename or f"{media.sha256}.{subtype}"
    try:
        text = await transcriber.transcribe(path, media.mime, filename)
    except TranscriptionError as exc:
        log.warning("transcription failed", extra={"error": str(exc)})
        return msgspec.structs.replace(media, error=str(exc))
    return msgspec.structs.replace(media, transcript=text)

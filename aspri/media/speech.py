"""Text to a voice note (``SPEECH_PROVIDER``): any OpenAI-compatible ``POST {base}/audio/speech``.

The service is asked for ``response_format: "opus"``, an OGG/Opus file: what WhatsApp shows as
a voice note with a play button. The answer is streamed into the media store and checked on
the way: it must begin as an OGG file does and stop within the voice cap (``MEDIA_MAX_MB``),
so a service answering garbage, or bytes without end, costs at most that much. Every failure
is a ``SpeechError`` whose text says why; the caller then sends the reply as text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator

import httpx

from aspri.config import Settings
from aspri.media.store import MediaStore, MediaTooLarge
from aspri.schemas.media import Voice

log = logging.getLogger(__name__)

OPENAI_BASE = "https://api.openai.com/v1"
MAX_INPUT_CHARS = 4096
"""The longest ``input`` OpenAI's speech endpoint takes; a longer reply stays text."""
OGG = b"OggS"
NOT_CONFIGURED = "no speech service is configured (SPEECH_PROVIDER)"
"""Why replies stay text without a speech service (the gateway's ``voiceError``, the engine's
``/voice on`` answer: one text, so the chat is told once)."""


class SpeechError(Exception):
    """No voice note was made; the message says why, for the person (no key, no content)."""


class Speech:
    """One OpenAI-compatible speech endpoint, storing what it says in the media store."""

    def __init__(self, settings: Settings, store: MediaStore, *, timeout_s: float = 20.0) -> None:
        base = settings.speech_base_url or settings.openai_base_url or OPENAI_BASE
        self.url = f"{base.rstrip('/')}/audio/speech"
        self.model = settings.speech_model
        self.voice = settings.speech_voice
        key = settings.speech_api_key or settings.openai_api_key
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.store = store
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, store: MediaStore) -> Speech | None:
        return cls(settings, store) if settings.speech_provider == "openai" else None

    async def speak(self, text: str) -> Voice:
        """``text`` as a stored OGG/Opus voice note whose transcript is ``text``."""
        if len(text) > MAX_INPUT_CHARS:
            raise SpeechError(
                f"the reply is longer than the {MAX_INPUT_CHARS} characters a voice note can say"
            )
        body = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": "opus",
        }
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_s) as client,
                client.stream("POST", self.url, headers=self._headers, json=body) as response,
            ):
                if response.status_code >= 400:
                    raise SpeechError(f"the speech service refused ({response.status_code})")
                stored = await self.store.put_stream("voice", _ogg(response.aiter_bytes()))
        except httpx.HTTPError as exc:
            raise SpeechError(f"the speech service is unreachable ({type(exc).__name__})") from None
        except MediaTooLarge as exc:
            raise SpeechError(f"the speech service answered more than {exc.cap} bytes") from None
        log.info("reply spoken", extra={"chars": len(text), "bytes": stored.size})
        return Voice(mime="audio/ogg", size=stored.size, sha256=stored.sha256, transcript=text)


async def _ogg(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as they come, once their first bytes show an OGG file (else SpeechError)."""
    head = b""
    async for chunk in chunks:
        if len(head) < len(OGG):
            head += chunk[: len(OGG) - len(head)]
            if len(head) == len(OGG) and head != OGG:
                raise SpeechError("the speech service did not answer with OGG audio")
        yield chunk
    if head != OGG:
        raise SpeechError("the speech service did not answer with OGG audio")

"""``TRANSCRIPTION_PROVIDER=local``: voice notes to text on this machine with faster-whisper.

An optional extra (``pip install 'aspri[local-transcription]'``), so it is imported only when
chosen; ``TRANSCRIPTION_LOCAL_MODEL`` is a model size name (``small``: faster-whisper fetches it
once into its cache) or the path of a converted model. The model is loaded once per process, on
first use, and each note is decoded in a worker thread, one at a time (decoding takes every core
it gets), so the event loop keeps serving. Without the extra, or when the model cannot be
loaded, a ``TranscriptionError`` says so: the note is kept with that reason, as with ``none``.
A failed load is tried again after ``RETRY_LOAD_S``, not for every note.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

RETRY_LOAD_S = 300.0
EXTRA = "pip install 'aspri[local-transcription]'"


class LocalTranscriptionError(Exception):
    """Why there is no local transcript (the extra, the model, the decoding)."""


class Whisper(Protocol):
    """What ASPRI uses of ``faster_whisper.WhisperModel``."""

    def transcribe(self, audio: str, **options: Any) -> tuple[Iterable[Any], Any]: ...


def load_faster_whisper(model: str) -> Whisper:
    """``faster_whisper.WhisperModel`` for ``model`` on the CPU (int8: the small footprint)."""
    try:
        module = importlib.import_module("faster_whisper")
    except ImportError:
        raise LocalTranscriptionError(
            f"local transcription needs the local-transcription extra ({EXTRA})"
        ) from None
    try:
        whisper: Whisper = module.WhisperModel(model, device="cpu", compute_type="int8")
    except Exception as exc:  # a missing path, a hub that cannot be reached, a broken model
        raise LocalTranscriptionError(
            f"the local transcription model {model!r} could not be loaded "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return whisper


class LocalWhisper:
    """One faster-whisper model, loaded lazily; ``transcribe`` runs it off the event loop."""

    def __init__(self, model: str, *, load: Callable[[str], Whisper] = load_faster_whisper) -> None:
        self.model = model
        self._load = load
        self._whisper: Whisper | None = None
        self._failed: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    async def transcribe(self, path: Path) -> str:
        async with self._lock:
            whisper = await self._loaded()
            try:
                return await asyncio.to_thread(_run, whisper, path)
            except Exception as exc:  # PyAV or the model could not read this file
                raise LocalTranscriptionError(
                    f"the local model could not read the audio ({type(exc).__name__})"
                ) from None

    async def _loaded(self) -> Whisper:
        if self._whisper is not None:
            return self._whisper
        if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_LOAD_S:
            raise LocalTranscriptionError(self._failed[1])
        began = time.monotonic()
        try:
            self._whisper = await asyncio.to_thread(self._load, self.model)
        except LocalTranscriptionError as exc:
            self._failed = (time.monotonic(), str(exc))
            log.warning("local transcription model not loaded", extra={"error": str(exc)})
            raise
        log.info(
            "local transcription model loaded",
            extra={"model": self.model, "seconds": round(time.monotonic() - began, 2)},
        )
        return self._whisper


def _run(whisper: Whisper, path: Path) -> str:
    """The whole transcript (faster-whisper decodes lazily, as its segments are read)."""
    segments, _info = whisper.transcribe(str(path))
    return " ".join(s.text.strip() for s in segments if s.text.strip())

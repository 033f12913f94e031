"""``TRANSCRIPTION_PROVIDER=local`` (faster-whisper, an optional extra).

The absence paths run for real: the extra is not in the test install, and no model can be
fetched on a test machine, so a note is kept with the reason, as with ``none``. The adapter
around ``WhisperModel.transcribe`` is tested with a stand-in object in its place (no real
model can be loaded here): it checks the file, the thread it runs in, one load for many notes,
a remembered failed load, and a file the model cannot read.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aspri.config import ConfigError, Settings
from aspri.media import MediaStore
from aspri.media.local_whisper import LocalTranscriptionError, Whisper
from aspri.media.transcribe import LocalTranscriber, Transcriber, with_transcript
from aspri.schemas.media import Voice, as_text
from tests.media.ogg import silent_opus

NOTE = silent_opus(1.0, "a voice note")


async def stored_note(tmp_path: Path) -> tuple[MediaStore, Voice]:
    store = MediaStore(tmp_path / "media", {"voice": 1 << 20})
    stored = await store.put("voice", NOTE)
    return store, Voice(sha256=stored.sha256, mime="audio/ogg", size=stored.size)


def test_local_is_chosen_by_the_setting() -> None:
    local = Settings.from_env({"TRANSCRIPTION_PROVIDER": "local"})
    assert local.transcription_local_model == "small"
    assert isinstance(Transcriber.from_settings(local), LocalTranscriber)
    assert isinstance(
        Transcriber.from_settings(Settings(transcription_provider="openai")), Transcriber
    )
    assert Transcriber.from_settings(Settings()) is None
    with pytest.raises(ConfigError, match="TRANSCRIPTION_PROVIDER"):
        Settings.from_env({"TRANSCRIPTION_PROVIDER": "whisper"})


async def test_without_the_extra_or_the_model_the_note_is_kept_with_the_reason(
    tmp_path: Path,
) -> None:
    settings = Settings(
        transcription_provider="local", transcription_local_model=str(tmp_path / "no-model")
    )
    store, note = await stored_note(tmp_path)
    kept = await with_transcript(Transcriber.from_settings(settings), store, note)
    assert kept.sha256 == note.sha256 and kept.transcript is None
    if importlib.util.find_spec("faster_whisper") is None:  # the test install: no extra
        assert kept.error == (
            "local transcription needs the local-transcription extra "
            "(pip install 'aspri[local-transcription]')"
        )
    else:  # the extra is there, the model directory is not
        assert kept.error is not None
        assert kept.error.startswith(f"the local transcription model '{tmp_path / 'no-model'}'")
    assert as_text("", kept) == (
        f"[voice note that could not be transcribed ({kept.error}); tell the person so]"
    )


@dataclass
class Segment:
    text: str


class StandInWhisper:
    """Stands in for ``faster_whisper.WhisperModel`` (no model can be loaded here): answers
    segments as faster-whisper does, after the test lets it go, noting where it ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def transcribe(self, audio: str, **options: Any) -> tuple[Iterable[Any], Any]:
        self.calls.append((Path(audio).read_bytes(), threading.get_ident()))
        self.started.set()
        assert self.release.wait(10), "the test never let the stand-in finish"
        return iter([Segment(" Halo, "), Segment("  "), Segment("apa kabar? ")]), object()


async def test_the_adapter_runs_the_model_in_a_thread_and_loads_it_once(
    tmp_path: Path,
) -> None:
    stand_in = StandInWhisper()
    loads: list[str] = []

    def load(model: str) -> Whisper:
        loads.append(model)
        return stand_in

    settings = Settings(transcription_provider="local", transcription_local_model="tiny")
    transcriber = LocalTranscriber(settings, load=load)
    store, note = await stored_note(tmp_path)
    first = asyncio.create_task(with_transcript(transcriber, store, note))
    await asyncio.to_thread(stand_in.started.wait, 10)
    # the model is decoding in its thread and this loop still runs
    ticks = 0
    for _ in range(3):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 3 and not first.done()
    stand_in.release.set()
    heard = await first
    again = await with_transcript(transcriber, store, note)
    assert heard.transcript == again.transcript == "Halo, apa kabar?"
    assert loads == ["tiny"]
    assert [data for data, _ in stand_in.calls] == [NOTE, NOTE]
    assert all(thread != threading.get_ident() for _, thread in stand_in.calls)


async def test_a_failed_load_is_remembered_and_an_unreadable_file_is_a_reason(
    tmp_path: Path,
) -> None:
    attempts: list[str] = []

    def broken(model: str) -> Whisper:
        attempts.append(model)
        raise LocalTranscriptionError(f"the local transcription model {model!r} is broken")

    store, note = await stored_note(tmp_path)
    transcriber = LocalTranscriber(Settings(transcription_local_model="base"), load=broken)
    for _ in range(2):
        kept = await with_transcript(transcriber, store, note)
        assert kept.error == "the local transcription model 'base' is broken"
    assert attempts == ["base"], "the load is not tried again for every note"

    class Unreadable:
        def transcribe(self, audio: str, **options: Any) -> tuple[Iterable[Any], Any]:
            raise RuntimeError("Invalid data found when processing input")

    transcriber = LocalTranscriber(Settings(), load=lambda model: Unreadable())
    kept = await with_transcript(transcriber, store, note)
    assert kept.error == "the local model could not read the audio (RuntimeError)"

"""Pure helpers of the gateway: chat ids, splitting, pacing (with a controllable clock)."""

from __future__ import annotations

import asyncio

import pytest

from aspri.api.whatsapp.pacing import Pacer, pacer_for
from aspri.api.whatsapp.splitting import split_text
from aspri.schemas import chatid
from tests.api.whatsapp.conftest import FakeClock


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+62 812-3456-7890", "6281234567890@c.us"),
        ("6281234567890", "6281234567890@c.us"),
        ("0062 (812) 3456.7890", "6281234567890@c.us"),
        ("15551234567@c.us", "15551234567@c.us"),
        ("15551234567@s.whatsapp.net", "15551234567@c.us"),
        ("120363025555555555@g.us", "120363025555555555@g.us"),
        ("6281234567890-1600000000@g.us", "6281234567890-1600000000@g.us"),
    ],
)
def test_normalize_accepts_numbers_and_chat_ids(raw: str, expected: str) -> None:
    assert chatid.normalize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "hello", "+62 812 abc", "0812345678", "12345", "1" * 16, "abc@c.us", "1@x.y"]
)
def test_normalize_rejects_malformed(raw: str) -> None:
    with pytest.raises(chatid.InvalidChatId):
        chatid.normalize(raw)


def test_split_keeps_short_text_whole() -> None:
    assert split_text("hello", 10) == ["hello"]


def test_split_prefers_paragraphs_then_words_and_respects_the_limit() -> None:
    text = "First paragraph here.\n\nSecond one is a bit longer than that."
    parts = split_text(text, 30)
    assert parts[0] == "First paragraph here."
    assert all(len(p) <= 30 for p in parts)
    assert " ".join(parts).replace("  ", " ") == text.replace("\n\n", " ")


def test_split_cuts_unbroken_text_hard() -> None:
    parts = split_text("x" * 25, 10)
    assert parts == ["x" * 10, "x" * 10, "x" * 5]


async def test_pacer_spaces_sends_per_chat_and_overall() -> None:
    clock = FakeClock()
    pacer = Pacer(rate_per_s=2.0, per_chat_interval_s=6.0, clock=clock)
    waits = [await pacer.wait_turn("a@c.us") for _ in range(3)]
    assert waits == [0.0, 6.0, 6.0]
    # Another chat is only held by the overall rate (0.5 s apart), not by a's 6 s interval.
    assert await pacer.wait_turn("b@c.us") == pytest.approx(0.5)
    assert await pacer.wait_turn("c@c.us") == pytest.approx(0.5)
    clock.t += 60  # idle for a minute: nobody waits
    assert await pacer.wait_turn("a@c.us") == 0.0


async def test_pacer_reserves_slots_for_concurrent_senders() -> None:
    clock = FakeClock()
    pacer = Pacer(rate_per_s=10.0, per_chat_interval_s=0.0, clock=clock)
    waits = await asyncio.gather(*(pacer.wait_turn(f"{n}@c.us") for n in range(4)))
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3])


async def test_pacing_defaults_by_engine_and_overrides() -> None:
    clock = FakeClock()
    local = pacer_for("local", None, None, clock)
    assert [await local.wait_turn("a@c.us") for _ in range(20)] == [0.0] * 20
    assert clock.sleeps == []  # the local web chat is not paced at all
    browser = pacer_for("browser", None, None, clock)
    waits = [await browser.wait_turn(f"{n}@c.us") for n in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 1.0])  # a linked phone: one message a second
    cloud = pacer_for("cloud", None, None, clock)
    assert cloud.gap == pytest.approx(1 / 80) and cloud.per_chat == 0.0
    paced_local = pacer_for("local", 4.0, 2.0, clock)
    assert (paced_local.gap, paced_local.per_chat) == (0.25, 2.0)

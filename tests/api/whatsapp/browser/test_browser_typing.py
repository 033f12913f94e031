"""While a turn works on a chat, the browser engine marks its messages read and shows
"typing…" (composing presence), refreshed on each repeat, ended by the reply; the reply may
quote the message it answers.

The page is the local WhatsApp Web stand-in (``fake_wa/wpp.js``), whose
``WPP.chat.markIsRead`` / ``markIsComposing`` / ``markIsPaused`` behave as wa-js's: they need a
chat WhatsApp Web has ("chat_not_found" otherwise), and a composing duration runs out into
paused. What the page tells WhatsApp is recorded by the stand-in server, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aspri.api.whatsapp.engines.browser import BrowserChannel
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import CHROMIUM, Inbox
from tests.api.whatsapp.browser.test_browser_channel import ANN, LAUNCH_TIMEOUT, deliver, logged_in
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

BUDI_LID = "408012345678901@lid"
BUDI = "6281234567890@c.us"


async def test_typing_shows_while_working_and_the_reply_ends_it(
    channel: BrowserChannel, fake_wa: FakeWhatsApp, inbox: Inbox
) -> None:
    await logged_in(channel, fake_wa)
    assert channel.composing_ms == 25_000  # TYPING_REFRESH_SECONDS (20) and a grace of 5
    composing = {"chatId": ANN, "state": "composing", "duration": 25_000}
    read = {"chatId": ANN, "state": "read"}

    # Nothing is shown in a chat WhatsApp Web does not have, and nothing is raised.
    await channel.working("15550001111@c.us", "x")
    assert fake_wa.presence == []

    deliver(fake_wa, id="3EB0Q1", chatId=ANN, body="what's the weather?")
    await wait_until(lambda: len(inbox.messages) == 1, LAUNCH_TIMEOUT)
    await channel.working(ANN, inbox.messages[0].id)
    assert fake_wa.presence == [read, composing]
    await channel.working(ANN, inbox.messages[0].id)  # the refresh while the turn runs
    assert fake_wa.presence == [read, composing] * 2

    await channel.send_text(ANN, "Sunny.")
    assert fake_wa.presence[-1] == {"chatId": ANN, "state": "paused"}
    assert [s["content"] for s in fake_wa.sent] == ["Sunny."]

    # A chat WhatsApp Web keeps under the person's hidden linked id: shown there.
    fake_wa.push({"cmd": "lid", "lid": BUDI_LID, "phone": BUDI})
    deliver(fake_wa, id="3EB0Q2", chatId=BUDI_LID, body="hi")
    await wait_until(lambda: len(inbox.messages) == 2, LAUNCH_TIMEOUT)
    assert inbox.messages[1].chat_id == BUDI
    await channel.working(BUDI, inbox.messages[1].id)
    assert fake_wa.presence[-2:] == [
        {"chatId": BUDI_LID, "state": "read"},
        {"chatId": BUDI_LID, "state": "composing", "duration": 25_000},
    ]


async def test_a_reply_quotes_the_message_it_answers(
    channel: BrowserChannel, fake_wa: FakeWhatsApp, inbox: Inbox
) -> None:
    """wa-js's ``quotedMsg`` (the stand-in, like wa-js, refuses an unknown message before
    sending anything): the reply quotes the message, or goes out unquoted when it cannot."""
    await logged_in(channel, fake_wa)
    deliver(fake_wa, id="3EB0ASK", chatId=ANN, body="and the weather?")
    await wait_until(lambda: len(inbox.messages) == 1, LAUNCH_TIMEOUT)
    asked = inbox.messages[0].id

    assert await channel.send_reply(ANN, "Sunny.", asked) == f"true_{ANN}_3EB0FAKE1"
    assert await channel.send_reply(ANN, "Still sunny.", f"false_{ANN}_GONE") == (
        f"true_{ANN}_3EB0FAKE2"
    )
    assert [(s["content"], s["options"].get("quotedMsg")) for s in fake_wa.sent] == [
        ("Sunny.", asked),
        ("Still sunny.", None),
    ]

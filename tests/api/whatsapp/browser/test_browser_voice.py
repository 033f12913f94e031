"""Voice notes out on the browser engine: the stored OGG/Opus file goes to WhatsApp Web as a
data URL and is sent by wa-js's ``sendFileMessage`` as a voice note (``type: audio``,
``isPtt``), as WhatsApp's own recorder sends it.

The page is the local WhatsApp Web stand-in (``fake_wa/wpp.js``): its ``sendFileMessage`` takes
a data URL as wa-js's does, reports the file's type and size to the stand-in server, echoes the
sent message with the file name as caption (wa-js's default) and acks it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aspri.api.whatsapp.channel import ChannelError
from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.schemas.media import Voice
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

OPUS = b"OggS\x00\x02" + b"\x09" * 700
ME = "15550000000@c.us"


async def test_a_voice_note_is_sent_as_one(
    channel: BrowserChannel, fake_wa: FakeWhatsApp, inbox: Inbox, tmp_path: Path
) -> None:
    await logged_in(channel, fake_wa)
    note = tmp_path / "note.ogg"
    note.write_bytes(OPUS)
    voice = Voice(mime="audio/ogg", size=len(OPUS), sha256=hashlib.sha256(OPUS).hexdigest())

    assert channel.voice_out
    assert await channel.send_voice(ANN, note, voice) == f"true_{ANN}_3EB0FAKE1"
    assert fake_wa.sent == [
        {
            "chatId": ANN,
            "file": {"mimetype": "audio/ogg;codecs=opus", "size": len(OPUS)},
            "options": {
                "type": "audio",
                "isPtt": True,
                "filename": "voice-note.ogg",
                "createChat": True,
                "waitForAck": True,
            },
        }
    ]

    # In the owner's own chat the note's echo is the assistant's, not the owner speaking.
    await channel.send_voice(ME, note, voice)
    deliver(fake_wa, id="3EB0SELF", chatId=ME, fromMe=True, body="and now?")
    await wait_until(lambda: len(inbox.messages) == 1, LAUNCH_TIMEOUT)
    assert (inbox.messages[0].body, inbox.messages[0].self_chat) == ("and now?", True)

    fake_wa.refuse.add("15559999999@c.us")
    with pytest.raises(ChannelError, match="ERROR_NETWORK") as refused:
        await channel.send_voice("15559999999@c.us", note, voice)
    assert refused.value.status == 502

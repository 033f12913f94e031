"""One person across id forms on the browser engine: a sender WhatsApp Web shows only by a
hidden linked id (``…@lid``) is recorded as the person (their phone's ``…@c.us``) when wa-js
knows the number, the link is recorded once as an event, and an ``@lid`` nobody can resolve
stays its own person.

The page is the local WhatsApp Web stand-in (``fake_wa/wpp.js``), whose
``WPP.contact.getPnLidEntry`` behaves as wa-js's: only ``@c.us`` and ``@lid`` ids, answered
from WhatsApp Web's LID/phone cache with ``{lid, phoneNumber, contact}``, a part absent when
unknown. Chromium, the gateway and the embedded Valkey are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.schemas import WhatsAppMessage
from aspri.schemas.identity import IdentityLinked
from aspri.streams import keys
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import CHROMIUM, browser_settings
from tests.api.whatsapp.browser.test_browser_channel import ANN, LAUNCH_TIMEOUT, logged_in
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

ANN_LID = "204060801234567@lid"
HIDDEN = "909090909090909@lid"
GROUP = "120363025555555555@g.us"


async def test_an_lid_sender_is_the_same_person_as_their_phone_id(
    open_gateway: GatewayFactory, fake_wa: FakeWhatsApp, data_dir: Path
) -> None:
    channel = BrowserChannel(browser_settings(data_dir, fake_wa.url()), backoff=(0.05, 0.5))
    async with open_gateway(
        channel=channel, data_dir=data_dir, inbound_burst=100, whatsapp_engine="browser"
    ) as gw:
        await logged_in(channel, fake_wa)
        fake_wa.push({"cmd": "lid", "lid": ANN_LID, "phone": ANN})

        def deliver(message_id: str, chat_id: str, body: str, **more: str) -> None:
            message = {"id": message_id, "chatId": chat_id, "body": body, "t": 1_700_000_000}
            fake_wa.push({"cmd": "message", "message": message | more})

        deliver("P1", ANN, "hi, it's Ann")
        deliver("L1", ANN_LID, "me again, hidden")
        deliver("L2", ANN_LID, "and again")
        deliver("G1", GROUP, "in the group", author=ANN_LID)
        deliver("H1", HIDDEN, "who am I?")

        async def messages(chat_id: str) -> list[WhatsAppMessage]:
            """The chat's messages (not the delivery statuses the page's acks add to it)."""
            chat = await gw.stream(keys.chat(chat_id))
            return [e.data for e in chat if isinstance(e.data, WhatsAppMessage)]

        async def recorded() -> bool:
            return len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 5

        await wait_until(recorded, LAUNCH_TIMEOUT)
        ann = await messages(ANN)
        assert [(m.body, m.chat_id, m.from_, m.alias) for m in ann] == [
            ("hi, it's Ann", ANN, ANN, None),
            ("me again, hidden", ANN, ANN, ANN_LID),
            ("and again", ANN, ANN, ANN_LID),
        ]
        assert await messages(ANN_LID) == []
        [group] = await messages(GROUP)
        assert (group.chat_id, group.from_, group.alias) == (GROUP, ANN, ANN_LID)
        # Unresolvable: its own person, under its own id, never guessed.
        [hidden] = await messages(HIDDEN)
        assert (hidden.chat_id, hidden.from_, hidden.alias) == (HIDDEN, HIDDEN, None)

        # The link is an event, written once however often the person writes.
        links = [e.data for e in await gw.stream(keys.IDENTITY)]
        assert links == [IdentityLinked(alias=ANN_LID, person=ANN, source="browser")]

        # WhatsApp Web forgot the number (a fresh session): the recorded link still applies.
        fake_wa.push({"cmd": "lid", "lid": ANN_LID, "phone": None})
        deliver("L3", ANN_LID, "after a relogin")

        async def relogged() -> bool:
            return len(await messages(ANN)) == 4

        await wait_until(relogged, LAUNCH_TIMEOUT)
        last = (await messages(ANN))[-1]
        assert (last.body, last.chat_id, last.from_, last.alias) == (
            "after a relogin",
            ANN,
            ANN,
            ANN_LID,
        )
        assert len(await gw.stream(keys.IDENTITY)) == 1

        # The API follows the person too: the @lid's history is theirs, a send to it goes to
        # their chat.
        page = await gw.client.get(f"/api/messages/{ANN_LID}")
        assert len(page.json()["data"]["messages"]) == 4
        sent = await gw.client.post(
            "/api/send-message", json={"phoneNumber": ANN_LID, "message": "got it"}
        )
        assert sent.status_code == 200, sent.text
        assert fake_wa.sent[-1]["chatId"] == ANN
        assert (await messages(ANN))[-1].body == "got it"

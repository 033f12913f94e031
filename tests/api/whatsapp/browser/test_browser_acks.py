"""Delivery statuses from the browser engine: WhatsApp Web's acks of the account's own messages
(wa-js's ``chat.msg_ack_change``) move a sent reply's state in the history, never backwards.

The page is the local WhatsApp Web stand-in (``fake_wa/wpp.js``), whose
``chat.msg_ack_change`` has wa-js's shape (``{ack, chat, sender, ids: [MsgKey]}``), fires ack 1
when the server took a message as wa-js does, and 2 (delivered) / 3 (read) when the test's
"server" says so. Chromium, the gateway and the embedded Valkey are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.schemas.status import WhatsAppStatus
from aspri.streams import keys
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import CHROMIUM, browser_settings
from tests.api.whatsapp.browser.test_browser_channel import ANN, LAUNCH_TIMEOUT, logged_in
from tests.api.whatsapp.conftest import GatewayFactory, Running
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

ANN_LID = "204060801234567@lid"


async def statuses(gw: Running) -> list[WhatsAppStatus]:
    return [e.data for e in await gw.stream(keys.chat(ANN)) if isinstance(e.data, WhatsAppStatus)]


async def shown(gw: Running) -> dict[str, Any]:
    response = await gw.client.get(f"/api/messages/{ANN.split('@')[0]}")
    assert response.status_code == 200, response.text
    return {m["id"]: m.get("status") for m in response.json()["data"]["messages"]}


async def test_acks_move_a_sent_message_to_delivered_and_read(
    open_gateway: GatewayFactory, fake_wa: FakeWhatsApp, data_dir: Path
) -> None:
    channel = BrowserChannel(browser_settings(data_dir, fake_wa.url()), backoff=(0.05, 0.5))
    async with open_gateway(channel=channel, data_dir=data_dir, whatsapp_engine="browser") as gw:
        await logged_in(channel, fake_wa)
        response = await gw.client.post(
            "/api/send-message", json={"phoneNumber": ANN.split("@")[0], "message": "on my way"}
        )
        assert response.status_code == 200, response.text
        sent = response.json()["data"]["messageId"]
        assert sent == f"true_{ANN}_3EB0FAKE1"

        async def reached(n: int) -> bool:
            return len(await statuses(gw)) >= n

        await wait_until(lambda: reached(1), LAUNCH_TIMEOUT)  # the server's ack (1)
        assert (await shown(gw))[sent] == "sent"

        def ack(number: int, *ids: str) -> None:
            fake_wa.push({"cmd": "ack", "ack": {"ack": number, "chatId": ANN, "ids": list(ids)}})

        ack(2, "3EB0FAKE1")
        await wait_until(lambda: reached(2), LAUNCH_TIMEOUT)
        assert (await shown(gw))[sent] == "delivered"
        ack(3, "3EB0FAKE1")
        await wait_until(lambda: reached(3), LAUNCH_TIMEOUT)
        assert (await shown(gw))[sent] == "read"

        # A late "delivered" changes nothing (nor is it recorded twice); an ack of someone
        # else's message is no status of ours; an ack for a message nobody knows is recorded,
        # not an error; an ack WhatsApp Web reports in the person's hidden-id chat lands in the
        # person's chat.
        fake_wa.push({"cmd": "lid", "lid": ANN_LID, "phone": ANN})
        ack(2, "3EB0FAKE1")
        fake_wa.push(
            {"cmd": "ack", "ack": {"ack": 3, "chatId": ANN, "ids": ["THEIRS"], "fromMe": False}}
        )
        ack(3, "3EB0GHOST")
        fake_wa.push({"cmd": "ack", "ack": {"ack": 4, "chatId": ANN_LID, "ids": ["3EB0VOICE"]}})
        await wait_until(lambda: reached(5), LAUNCH_TIMEOUT)
        assert (await shown(gw))[sent] == "read"
        recorded = [(s.message_id, s.status, s.channel) for s in await statuses(gw)]
        assert recorded == [
            (sent, "sent", "browser"),
            (sent, "delivered", "browser"),
            (sent, "read", "browser"),
            (f"true_{ANN}_3EB0GHOST", "read", "browser"),
            (f"true_{ANN_LID}_3EB0VOICE", "read", "browser"),
        ]

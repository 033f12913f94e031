"""The browser engine against a local imitation of WhatsApp Web.

Real WhatsApp cannot be reached from a test machine. These tests serve ``fake_wa/``: a page
whose ``window.WPP`` imitates the part of wa-js (``@wppconnect/wa-js``) the driver uses, with
the same function and event names, backed by a fake WhatsApp server (``fake_server.py``) that
pushes logins and messages and records sends. Chromium is Debian's, driven by Playwright;
crashes are real (the renderer or the browser process is killed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aspri.api.whatsapp.channel import ChannelError
from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.schemas import WhatsAppMessage
from aspri.schemas.media import Image
from tests.api.whatsapp.browser.fake_server import PAGES, FakeWhatsApp
from tests.api.whatsapp.browser.support import (
    CHROMIUM,
    Inbox,
    browser_settings,
    chromium_pids,
    kill,
)
from tests.helpers import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

LAUNCH_TIMEOUT = 20.0
GROUP = "120363025555555555@g.us"
ANN = "15557654321@c.us"


async def logged_in(channel: BrowserChannel, fake_wa: FakeWhatsApp) -> None:
    await wait_until(lambda: channel.state() == "scan_qr", LAUNCH_TIMEOUT)
    await wait_until(lambda: fake_wa.connections >= 1)
    fake_wa.push({"cmd": "login"})
    await wait_until(lambda: channel.state() == "working")


def deliver(fake_wa: FakeWhatsApp, **message: object) -> None:
    fake_wa.push({"cmd": "message", "message": {"t": 1_700_000_000, **message}})


async def test_qr_login_inbound_and_send(
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    channel: BrowserChannel,
    fake_wa: FakeWhatsApp,
    inbox: Inbox,
    data_dir: Path,
) -> None:
    await wait_until(lambda: channel.state() == "scan_qr", LAUNCH_TIMEOUT)
    assert await channel.qr() == "2@fake-ref-1,pubkey,identity,secret"
    with pytest.raises(ChannelError) as not_ready:
        await channel.send_text(ANN, "too early")
    assert not_ready.value.status == 503

    await wait_until(lambda: fake_wa.connections >= 1)
    fake_wa.push({"cmd": "qr_idle"})

    async def qr_refreshed() -> bool:
        return await channel.qr() == "2@fake-ref-2,pubkey,identity,secret"

    await wait_until(qr_refreshed)

    fake_wa.push({"cmd": "login"})
    await wait_until(lambda: channel.state() == "working")
    assert await channel.qr() is None

    # Status updates, notifications and one's own messages never reach the inbound queue; a
    # message the gateway fails to take is retried, and the order is kept.
    group_id = f"false_{GROUP}_3EB0AAA1_{ANN}"
    inbox.fail_first[group_id] = 1
    deliver(fake_wa, id="3EB0STATUS", chatId="status@broadcast", author=ANN, body="my status")
    deliver(fake_wa, id="3EB0NOTE", chatId=ANN, type="e2e_notification", isNotification=True)
    deliver(fake_wa, id="3EB0MINE", chatId=ANN, fromMe=True, body="sent from the phone")
    deliver(
        fake_wa,
        id="3EB0AAA1",
        chatId=GROUP,
        author=ANN,
        notifyName="Ann",
        body="hello group",
        quotedStanzaID="3EB0QUOTED",
        quotedParticipant="15550000000@c.us",
    )
    deliver(
        fake_wa,
        id="3EB0IMG",
        chatId=ANN,
        notifyName="Ann",
        type="image",
        body="/9j/4AAQSkZJRgABAQAAAQABAAD",
        caption="look at this",
        isMedia=True,
        mimetype="image/jpeg",
        size=4,
        data="/9j/4A==",
    )
    await wait_until(lambda: len(inbox.messages) == 2)
    assert inbox.messages == [
        WhatsAppMessage(
            id=group_id,
            chat_id=GROUP,
            from_=ANN,
            from_name="Ann",
            body="hello group",
            type="chat",
            timestamp=1_700_000_000,
            is_group=True,
            quoted_message_id=f"false_{GROUP}_3EB0QUOTED_15550000000@c.us",
        ),
        WhatsAppMessage(
            id=f"false_{ANN}_3EB0IMG",
            chat_id=ANN,
            from_=ANN,
            from_name="Ann",
            body="look at this",
            type="image",
            timestamp=1_700_000_000,
            media=Image(
                mime="image/jpeg",
                size=4,
                sha256="ba4f25bf16ba4be6bc7d3276fafeb67f9eb3c5df042bc3a405e1af15b921eed7",
                caption="look at this",
            ),
        ),
    ]
    assert inbox.attempts == {group_id: 2, f"false_{ANN}_3EB0IMG": 1}

    message_id = await channel.send_text(ANN, "Hello from ASPRI")
    assert message_id == f"true_{ANN}_3EB0FAKE1"
    assert fake_wa.sent == [
        {
            "chatId": ANN,
            "content": "Hello from ASPRI",
            "options": {"createChat": True, "waitForAck": True},
        }
    ]

    fake_wa.refuse.add("15559999999@c.us")
    with pytest.raises(ChannelError, match="ERROR_NETWORK") as refused:
        await channel.send_text("15559999999@c.us", "lost in transit")
    assert (refused.value.status, refused.value.permanent) == (502, False)  # worth a retry
    with pytest.raises(ChannelError, match="invalid_wid") as invalid:
        await channel.send_text("not-a-chat", "nowhere")
    assert (invalid.value.status, invalid.value.permanent) == (502, True)
    assert (invalid.value.code, invalid.value.title) == ("invalid_wid", "not a WhatsApp id")
    fake_wa.absent.add("15558888888@c.us")
    with pytest.raises(ChannelError, match="chat_not_found") as absent:
        await channel.send_text("15558888888@c.us", "are you there?")
    assert (absent.value.permanent, absent.value.title) == (True, "not on WhatsApp")

    # The page echoes every sent message as a new message of one's own: none was handed over.
    deliver(fake_wa, id="3EB0LAST", chatId=ANN, body="thanks")
    await wait_until(lambda: len(inbox.messages) == 3)
    assert [m.id for m in inbox.messages][2:] == [f"false_{ANN}_3EB0LAST"]

    finished = spans.get_finished_spans()
    sends = [s for s in finished if s.name == "whatsapp.browser send"]
    assert [s.attributes["messaging.destination.name"] for s in sends] == [
        ANN,
        ANN,
        "15559999999@c.us",
        "not-a-chat",
        "15558888888@c.us",
    ]
    assert sends[1].attributes["messaging.message.id"] == message_id
    assert [s.status.status_code for s in sends] == [
        StatusCode.ERROR,
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.ERROR,
    ]
    receives = [s for s in finished if s.name == "whatsapp.browser receive"]
    assert [(s.attributes["messaging.message.id"], s.status.status_code) for s in receives] == [
        (group_id, StatusCode.ERROR),
        (group_id, StatusCode.UNSET),
        (f"false_{ANN}_3EB0IMG", StatusCode.UNSET),
        (f"false_{ANN}_3EB0LAST", StatusCode.UNSET),
    ]
    assert any(s.name == "whatsapp.browser connect" for s in finished)

    # Ids and states are logged; message bodies are not.
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert group_id in logged and "scan_qr" in logged
    bodies = (
        "hello group",
        "look at this",
        "Hello from ASPRI",
        "lost in transit",
        "nowhere",
        "are you there?",
    )
    for body in bodies:
        assert body not in logged

    assert channel.profile_dir == data_dir / "browser-profile"
    assert (channel.profile_dir / "Default").is_dir()
    assert fake_wa.configs == [{"deviceName": False, "disableGoogleAnalytics": False}]
    assert fake_wa.user_agents
    assert all("Chrome/" in ua and "Headless" not in ua for ua in fake_wa.user_agents)


async def test_message_yourself_is_the_owner_talking_and_replies_are_not(
    channel: BrowserChannel, fake_wa: FakeWhatsApp, inbox: Inbox
) -> None:
    """In the linked account's own chat, what the person types is an inbound message
    (``selfChat``); the assistant's replies there are echoed by the page and stay its own."""
    me = "15550000000@c.us"
    await logged_in(channel, fake_wa)
    deliver(fake_wa, id="3EB0SELF1", chatId=me, fromMe=True, body="remind me at 5")
    await wait_until(lambda: len(inbox.messages) == 1)
    await channel.send_text(me, "remind me at 5")  # the same text, sent by the assistant
    deliver(fake_wa, id="3EB0ANN", chatId=ANN, body="hi")
    deliver(fake_wa, id="3EB0MINE", chatId=ANN, fromMe=True, body="from the phone")
    await wait_until(lambda: len(inbox.messages) == 2)
    first, second = inbox.messages
    assert (first.chat_id, first.from_, first.from_me, first.self_chat) == (me, me, False, True)
    assert first.body == "remind me at 5"
    assert (second.id, second.self_chat) == (f"false_{ANN}_3EB0ANN", False)


@pytest.mark.slow
async def test_injects_wajs_and_reconnects_after_a_crash_and_a_dead_browser(
    fake_wa: FakeWhatsApp, inbox: Inbox, data_dir: Path
) -> None:
    """On a page without ``window.WPP`` (real WhatsApp Web), wa-js is injected on every load."""
    settings = browser_settings(data_dir, fake_wa.url("bare.html"), wajs_path=str(PAGES / "wpp.js"))
    channel = BrowserChannel(settings, backoff=(0.05, 0.5))
    await channel.start(inbox)
    try:
        await logged_in(channel, fake_wa)
        assert await channel.qr() is None

        # Without the session kept in the profile, the new page would wait at the QR forever.
        kill(chromium_pids(channel.profile_dir, renderers=True))
        await wait_until(
            lambda: fake_wa.page_loads == 2 and channel.state() == "working", LAUNCH_TIMEOUT
        )
        kill(chromium_pids(channel.profile_dir, renderers=False))
        await wait_until(
            lambda: fake_wa.page_loads == 3 and channel.state() == "working", LAUNCH_TIMEOUT
        )

        await wait_until(lambda: fake_wa.connections == 3)
        assert fake_wa.configs == [{"deviceName": "ASPRI", "disableGoogleAnalytics": True}] * 3
        deliver(fake_wa, id="3EB0AFTER", chatId=ANN, body="still there?")
        await wait_until(lambda: [m.id for m in inbox.messages] == [f"false_{ANN}_3EB0AFTER"])
        assert await channel.send_text(ANN, "yes") == f"true_{ANN}_3EB0FAKE1"
        assert [s["content"] for s in fake_wa.sent] == ["yes"]
    finally:
        await channel.stop()
    assert channel.state() == "disconnected"
    with pytest.raises(ChannelError) as stopped:
        await channel.send_text(ANN, "after stop")
    assert stopped.value.status == 503
    await channel.stop()

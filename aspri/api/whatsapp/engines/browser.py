"""The ``browser`` channel engine: WhatsApp Web in Chromium, driven by Playwright.

Chromium runs with a persistent profile (``<data dir>/browser-profile``), where WhatsApp Web
keeps its session, so only the first start needs a QR scan. The driver does not scrape the DOM:
it injects wa-js (see ``browser_wajs.py``), which exposes WhatsApp Web's own modules as
``window.WPP``, plus a small bridge (``browser_bridge.js``) that pushes state changes and
inbound messages to Python through Playwright bindings. A page that already defines
``window.WPP`` (the test imitation of WhatsApp Web) gets only the bridge.

When the page crashes or the browser dies, the whole browser is launched again with
exponential backoff. Inbound messages pass through a queue, so a slow or failing ``on_message``
(the gateway appending to Redis) neither blocks the page nor reorders messages; each is retried
up to ``MAX_DELIVERIES`` times before it is logged as dropped (the gateway deduplicates by
message id, so a retry is safe). A message's file is downloaded through wa-js into the media
store (``browser_media.py``) and a voice note transcribed before it is handed over, once. A
sender WhatsApp Web names by a hidden linked id (``…@lid``) is handed over as the person (the
phone's ``…@c.us``, the ``@lid`` in ``alias``) when wa-js knows the phone number; otherwise as
the ``@lid`` (the gateway still applies links it recorded before, see ``aspri.identity``).
Acks of the account's own messages (wa-js's ``chat.msg_ack_change``) become delivery statuses
(``report_status``), through a queue and task of their own. While a turn works on a chat
(``working``), its messages are marked read and the chat shows "typing…" (composing presence),
refreshed by the gateway's repeats and ended by the reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from aspri.api.whatsapp.channel import Channel, ChannelError, OnMessage
from aspri.api.whatsapp.engines import browser_media
from aspri.api.whatsapp.engines.browser_media import PageMedia
from aspri.api.whatsapp.engines.browser_wajs import CONFIG as WAJS_CONFIG
from aspri.api.whatsapp.engines.browser_wajs import WaJsUnavailable, wajs_script
from aspri.config import Settings
from aspri.media import MediaStore
from aspri.media.transcribe import Transcriber, with_transcript
from aspri.schemas import WhatsAppMessage, chatid, now_ms
from aspri.schemas.media import Voice
from aspri.schemas.status import DELIVERED, FAILED, READ, SENT, WhatsAppStatus
from aspri.telemetry.tracing import tracer

log = logging.getLogger("aspri.whatsapp.browser")
_tracer = tracer("aspri.whatsapp.browser")

LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
STATES = frozenset({"starting", "scan_qr", "working", "disconnected"})
SEND_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 5.0
BRIDGE_JS = Path(__file__).with_name("browser_bridge.js").read_text(encoding="utf-8")
_HAS_WPP = "() => typeof window.WPP === 'object' && window.WPP !== null"
_SEND = "([chatId, text]) => window.__aspri.send(chatId, text)"
_SEND_REPLY = "([chatId, text, quoted]) => window.__aspri.sendReply(chatId, text, quoted)"
_SEND_VOICE = "([chatId, url]) => window.__aspri.sendVoice(chatId, url)"
_PHONE_OF = "(id) => window.__aspri.phoneOf(id)"
_WORKING = "([chatId, ms]) => window.__aspri.working(chatId, ms)"
COMPOSING_GRACE_S = 5.0
""""typing…" shows this much longer than ``TYPING_REFRESH_SECONDS`` without a refresh, so it
stays up while a turn runs and goes away soon after a worker died mid-turn."""
WORKING_TIMEOUT_S = 10.0
REFUSED_FOR_GOOD = {
    "invalid_wid": "not a WhatsApp id",
    "chat_not_found": "not on WhatsApp",
}
"""wa-js's error codes of a send that cannot succeed when tried again (the gateway records it
as failed and tells the owner); any other refusal (a network error) is worth retrying."""
ACK_STATUS = {-1: FAILED, 1: SENT, 2: DELIVERED, 3: READ, 4: READ}
"""WhatsApp Web's ack of an own message → its delivery status (4, played, is read for a voice
note). 0, the clock (not yet at WhatsApp's server), is no status: ``send_text`` returns only
after the server's ack."""


class _Ack(msgspec.Struct, rename="camel"):
    """What the bridge reports of one ack."""

    message_id: str
    chat_id: str
    ack: int
    sender: str | None = None


_SET_WPP_CONFIG = "(config) => { window.WPPConfig = config; }"


def backoff_delays(initial: float, maximum: float) -> Iterator[float]:
    """``initial``, twice that, ... capped at ``maximum``, forever."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, maximum)


class BrowserChannel(Channel):
    """One WhatsApp Web session in a Chromium the channel launches and relaunches itself."""

    name = "browser"
    voice_out = True
    max_text = 65_536
    """WhatsApp's own limit for one text message."""

    def __init__(self, settings: Settings, *, backoff: tuple[float, float] = (1.0, 60.0)) -> None:
        self._settings = settings
        self._backoff = backoff
        self._state = "disconnected"
        self._qr: str | None = None
        self._page: Page | None = None
        self._on_message: OnMessage | None = None
        self._inbound: asyncio.Queue[tuple[WhatsAppMessage, PageMedia | None]] = asyncio.Queue()
        self._acks: asyncio.Queue[WhatsAppStatus] = asyncio.Queue()
        self.media = MediaStore(
            settings.media_dir, settings.media_max_bytes, settings.media_retention_days
        )
        self.transcriber = Transcriber.from_settings(settings)
        self.composing_ms = int((settings.typing_refresh_s + COMPOSING_GRACE_S) * 1000)
        """How long "typing…" holds without the next working signal."""
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def profile_dir(self) -> Path:
        """Chromium's user data directory, which holds the WhatsApp Web session."""
        return self._settings.data_dir / "browser-profile"

    def state(self) -> str:
        return self._state

    async def qr(self) -> str | None:
        return self._qr if self._state == "scan_qr" else None

    async def start(self, on_message: OnMessage) -> None:
        if self._tasks:
            return
        self._on_message = on_message
        self._set_state("starting")
        self._tasks = [
            asyncio.create_task(self._supervise(), name="whatsapp-browser"),
            asyncio.create_task(self._deliver(), name="whatsapp-browser-inbound"),
            asyncio.create_task(self._report_acks(), name="whatsapp-browser-acks"),
        ]

    async def stop(self) -> None:
        if not self._tasks:
            return
        supervisor, *workers = self._tasks
        self._tasks = []
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._inbound.join()
                await self._acks.join()
        except TimeoutError:
            log.error(
                "inbound messages or acks not handed over at stop",
                extra={"messages": self._inbound.qsize(), "acks": self._acks.qsize()},
            )
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._set_state("disconnected")

    async def send_text(self, chat_id: str, text: str) -> str:
        sent = await self._send(_SEND, [chat_id, text], chat_id)
        log.info("message sent", extra={"chatId": chat_id, "messageId": sent, "chars": len(text)})
        return sent

    async def send_reply(self, chat_id: str, text: str, quoted: str) -> str:
        """The message quoting ``quoted`` (wa-js's ``quotedMsg``), as a swipe-to-reply shows
        it; unquoted when WhatsApp Web cannot quote that message."""
        sent = await self._send(_SEND_REPLY, [chat_id, text, quoted], chat_id)
        log.info("reply sent", extra={"chatId": chat_id, "messageId": sent, "quoted": quoted})
        return sent

    async def send_voice(self, chat_id: str, path: Path, voice: Voice) -> str:
        """The stored note as a voice note (wa-js's ``sendFileMessage`` with ``isPtt``), handed
        to the page as a data URL."""
        data = await asyncio.to_thread(path.read_bytes)
        mime = (voice.mime or "audio/ogg").split(";")[0]
        url = f"data:{mime};codecs=opus;base64,{base64.b64encode(data).decode()}"
        sent = await self._send(_SEND_VOICE, [chat_id, url], chat_id)
        log.info(
            "voice note sent", extra={"chatId": chat_id, "messageId": sent, "bytes": len(data)}
        )
        return sent

    async def _send(self, expression: str, args: list[str], chat_id: str) -> str:
        """One send through the bridge: the new message's id, or a ChannelError (503 when the
        page is not there to send, 502 when WhatsApp refused)."""
        attributes = {
            "messaging.system": "whatsapp",
            "messaging.operation.type": "send",
            "messaging.destination.name": chat_id,
        }
        with _tracer.start_as_current_span(
            "whatsapp.browser send", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            page = self._page
            if page is None or self._state != "working":
                raise ChannelError(f"WhatsApp Web is {self._state}", status=503)
            try:
                sent = await asyncio.wait_for(page.evaluate(expression, args), SEND_TIMEOUT_S)
            except TimeoutError:
                raise ChannelError(
                    f"WhatsApp Web did not confirm the message within {SEND_TIMEOUT_S:.0f}s"
                ) from None
            except PlaywrightError as exc:
                if page.is_closed() or self._page is not page:
                    raise ChannelError("WhatsApp Web went away while sending", status=503) from exc
                reason = (str(exc).splitlines() or ["unknown error"])[0][:200]
                log.warning("send refused", extra={"chatId": chat_id, "reason": reason})
                code = next((c for c in REFUSED_FOR_GOOD if c in reason), None)
                raise ChannelError(
                    f"WhatsApp Web refused the message: {reason}",
                    permanent=code is not None,
                    code=code,
                    title=REFUSED_FOR_GOOD.get(code or ""),
                ) from exc
            if not isinstance(sent, str) or not sent:
                raise ChannelError("WhatsApp Web returned no message id")
            span.set_attribute("messaging.message.id", sent)
            return sent

    async def working(self, chat_id: str, message_id: str) -> None:
        """Mark the chat read and show "typing…" there (wa-js's ``markIsRead`` and
        ``markIsComposing`` for ``composing_ms``, after which wa-js marks it paused unless the
        next signal came); a courtesy: a failure is logged, never raised."""
        page = self._page
        if page is None or self._state != "working":
            return
        try:
            await asyncio.wait_for(
                page.evaluate(_WORKING, [chat_id, self.composing_ms]), WORKING_TIMEOUT_S
            )
        except (PlaywrightError, TimeoutError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            log.info("typing not shown", extra={"chatId": chat_id, "reason": reason})

    # -- the browser session -----------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run sessions one after another, waiting longer after each that failed to load.

        The Playwright driver outlives a session (starting it costs up to a second or two) and
        is restarted only after a session failed.
        """
        delays = backoff_delays(*self._backoff)
        driver: Playwright | None = None
        try:
            while True:
                loaded = False
                try:
                    driver = driver or await async_playwright().start()
                    loaded = await self._session(driver)
                    log.warning("WhatsApp Web page went away")
                except Exception as exc:
                    log.warning(
                        "browser session failed", extra={"error": str(exc)[:300]}, exc_info=True
                    )
                    await _stop_driver(driver)
                    driver = None
                self._set_state("disconnected")
                if loaded:
                    delays = backoff_delays(*self._backoff)
                delay = next(delays)
                log.info("reconnecting to WhatsApp Web", extra={"delay_s": delay})
                await asyncio.sleep(delay)
        finally:
            await _stop_driver(driver)

    async def _session(self, driver: Playwright) -> bool:
        """Launch Chromium, open WhatsApp Web, return when the page or browser is gone.

        Returns whether the page loaded, which resets the backoff.
        """
        closed = asyncio.Event()
        failures: list[WaJsUnavailable] = []
        installs: set[asyncio.Task[None]] = set()
        self._set_state("starting")
        with _tracer.start_as_current_span(
            "whatsapp.browser connect", attributes={"url.full": self._settings.browser_url}
        ):
            await asyncio.to_thread(self.profile_dir.mkdir, parents=True, exist_ok=True)
            context = await driver.chromium.launch_persistent_context(
                self.profile_dir,
                executable_path=self._settings.chromium_path,
                headless=self._settings.browser_headless,
                args=list(LAUNCH_ARGS),
                bypass_csp=True,
            )
        try:
            context.on("close", lambda _: closed.set())
            await context.expose_binding("__aspriState", self._on_state)
            await context.expose_binding("__aspriInbound", self._on_inbound)
            await context.expose_binding("__aspriAck", self._on_ack)
            page = context.pages[0] if context.pages else await context.new_page()
            page.on("crash", lambda _: closed.set())
            page.on("close", lambda _: closed.set())
            lock = asyncio.Lock()

            def on_load(loaded: Page) -> None:
                task = asyncio.create_task(self._install(loaded, lock, closed, failures))
                installs.add(task)
                task.add_done_callback(installs.discard)

            page.on("domcontentloaded", on_load)
            await _unheadless_user_agent(context, page)
            self._page = page
            await page.goto(self._settings.browser_url, wait_until="domcontentloaded")
            await closed.wait()
            if failures:
                raise failures[0]
            return True
        finally:
            self._page = None
            for task in installs:
                task.cancel()
            with contextlib.suppress(PlaywrightError):
                await context.close()

    async def _install(
        self,
        page: Page,
        lock: asyncio.Lock,
        closed: asyncio.Event,
        failures: list[WaJsUnavailable],
    ) -> None:
        """Bring wa-js (unless the page has ``window.WPP``) and the bridge into a new document.

        Without wa-js the session cannot work: it is ended, and retried with backoff.
        """
        self._set_state("starting")
        async with lock:
            try:
                if not await page.evaluate(_HAS_WPP):
                    script = await wajs_script(self._settings)
                    await page.evaluate(_SET_WPP_CONFIG, WAJS_CONFIG)
                    await page.add_script_tag(path=script)
                    log.info("wa-js injected")
                await page.evaluate(BRIDGE_JS)
            except WaJsUnavailable as exc:
                failures.append(exc)
                closed.set()
            except PlaywrightError as exc:
                # Usually the page navigated meanwhile; its next load installs again.
                log.warning("bridge not installed", extra={"error": str(exc)[:300]})

    # -- calls from the page -----------------------------------------------------------------

    def _on_state(self, _source: Any, report: Any) -> None:
        state = report.get("state") if isinstance(report, dict) else None
        if state not in STATES:
            log.warning("unknown state from the bridge", extra={"state": str(state)[:50]})
            return
        qr = report.get("qr")
        self._qr = qr if state == "scan_qr" and isinstance(qr, str) else None
        self._set_state(state)

    def _on_inbound(self, _source: Any, payload: Any) -> None:
        """Queue one message seen by the page (synchronous, so the page's order is kept).

        The bridge describes what the message carries in ``media``; its file is fetched later,
        in order, by the delivery task."""
        try:
            if not isinstance(payload, dict):
                raise msgspec.ValidationError("Expected `object`")
            raw = dict(payload)
            described = raw.pop("media", None)
            message = msgspec.convert(raw, WhatsAppMessage)
        except msgspec.ValidationError as exc:
            message_id = payload.get("id") if isinstance(payload, dict) else None
            log.error(
                "unreadable message from the page dropped",
                extra={"messageId": message_id, "error": str(exc)},
            )
            return
        extra = {"messageId": message.id, "chatId": message.chat_id, "type": message.type}
        if message.from_me or payload.get("isStatus") or payload.get("isNotification"):
            log.debug("message skipped (own, status or notification)", extra=extra)
            return
        log.debug("message received", extra=extra)
        self._inbound.put_nowait((message, _described(described, message.type)))

    def _on_ack(self, _source: Any, report: Any) -> None:
        """Queue the delivery status one ack stands for."""
        try:
            ack = msgspec.convert(report, _Ack)
        except msgspec.ValidationError as exc:
            log.warning("unreadable ack from the page ignored", extra={"error": str(exc)})
            return
        status = ACK_STATUS.get(ack.ack)
        if status is None:
            return
        self._acks.put_nowait(
            WhatsAppStatus(
                chat_id=ack.chat_id[:200],
                message_id=ack.message_id[:200],
                status=status,
                timestamp=now_ms(),
                channel=self.name,
                recipient_id=ack.sender[:200] if ack.sender else None,
                error_title="WhatsApp Web could not send the message" if status == FAILED else None,
            )
        )

    async def _report_acks(self) -> None:
        """Record each ack's status (an ack to an ``@lid`` chat in the person's chat), retried
        like inbound messages; a status for a message nobody knows is recorded too."""
        while True:
            status = await self._acks.get()
            try:
                if self.on_status is None:  # no gateway records statuses (a bare channel)
                    continue
                chat_id = await self._person_of(status.chat_id)
                status = msgspec.structs.replace(status, chat_id=chat_id)
                async for attempt in self._attempts():
                    try:
                        await self.report_status(status)
                        break
                    except Exception as exc:
                        _attempt_failed("ack not recorded", status.message_id, attempt, exc)
                else:
                    log.error("ack dropped after retries", extra={"messageId": status.message_id})
            finally:
                self._acks.task_done()

    async def _person_of(self, chat_id: str) -> str:
        """The phone's chat id of an ``@lid`` wa-js can resolve; any other id as it is."""
        page = self._page
        if not chat_id.endswith("@lid") or page is None:
            return chat_id
        try:
            phone = chatid.normalize(str(await page.evaluate(_PHONE_OF, chat_id)))
        except (PlaywrightError, chatid.InvalidChatId):
            return chat_id
        return phone if phone.endswith("@c.us") else chat_id

    async def _deliver(self) -> None:
        while True:
            message, content = await self._inbound.get()
            try:
                message = await self._as_person(message)
                if content is not None:
                    message = await self._with_content(message, content)
                await self._hand_over(message)
            except Exception:
                log.exception("inbound message dropped", extra={"messageId": message.id})
            finally:
                self._inbound.task_done()

    async def _as_person(self, message: WhatsAppMessage) -> WhatsAppMessage:
        """The message from the phone's id when its sender is an ``@lid`` wa-js can resolve."""
        lid = message.from_
        if not lid.endswith("@lid"):
            return message
        phone = await self._person_of(lid)
        if phone == lid:
            log.info("sender's linked id not resolved", extra={"messageId": message.id})
            return message
        chat_id = phone if message.chat_id == lid else message.chat_id
        return msgspec.structs.replace(message, from_=phone, chat_id=chat_id, alias=lid)

    async def _with_content(self, message: WhatsAppMessage, content: PageMedia) -> WhatsAppMessage:
        """The message with what it carries: a file downloaded (and a voice note transcribed)."""
        with _tracer.start_as_current_span(
            "whatsapp.browser media",
            attributes={"messaging.message.id": message.id, "aspri.media.type": content.type},
        ):
            media = await browser_media.content(self._page, self.media, message.id, content)
            media = await with_transcript(self.transcriber, self.media, media)
        body = message.body or getattr(media, "caption", None) or ""
        return msgspec.structs.replace(message, media=media, body=body)

    async def _hand_over(self, message: WhatsAppMessage) -> None:
        assert self._on_message is not None
        attributes = {
            "messaging.system": "whatsapp",
            "messaging.operation.type": "receive",
            "messaging.destination.name": message.chat_id,
            "messaging.message.id": message.id,
        }
        async for attempt in self._attempts():
            with _tracer.start_as_current_span(
                "whatsapp.browser receive", kind=SpanKind.CONSUMER, attributes=attributes
            ) as span:
                span.set_attribute("aspri.attempt", attempt)
                try:
                    await self._on_message(message)
                    return
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    _attempt_failed("inbound message not accepted", message.id, attempt, exc)
        log.error(
            "inbound message dropped after retries",
            extra={"messageId": message.id, "chatId": message.chat_id},
        )

    async def _attempts(self) -> AsyncIterator[int]:
        """Attempt numbers 1 to ``max_deliveries`` for a hand-over to the gateway, with the
        backoff's pause before each retry (the caller stops at the first success)."""
        delays = backoff_delays(*self._backoff)
        for attempt in range(1, self._settings.max_deliveries + 1):
            if attempt > 1:
                await asyncio.sleep(next(delays))
            yield attempt

    def _set_state(self, state: str) -> None:
        if state != self._state:
            log.info("WhatsApp Web state", extra={"state": state, "previous": self._state})
            self._state = state
        if state != "scan_qr":
            self._qr = None


def _described(described: Any, message_type: str) -> PageMedia | None:
    """The bridge's description of a message's content; one it cannot have meant (a changed
    WhatsApp Web) is the message's type alone, so the message is still recorded."""
    if described is None:
        return None
    try:
        return msgspec.convert(described, PageMedia)
    except msgspec.ValidationError as exc:
        log.warning("unreadable media description", extra={"error": str(exc)[:300]})
        return PageMedia(type=message_type)


def _attempt_failed(event: str, message_id: str, attempt: int, exc: Exception) -> None:
    log.warning(event, extra={"messageId": message_id, "attempt": attempt, "error": str(exc)[:300]})


async def _unheadless_user_agent(context: BrowserContext, page: Page) -> None:
    """Present a regular Chrome user agent, as whatsapp-web.js and wppconnect do.

    Headless Chromium says ``HeadlessChrome``, and WhatsApp Web checks the browser it runs in.
    """
    agent = await page.evaluate("navigator.userAgent")
    if isinstance(agent, str) and "HeadlessChrome" in agent:
        cdp = await context.new_cdp_session(page)
        await cdp.send(
            "Emulation.setUserAgentOverride",
            {"userAgent": agent.replace("HeadlessChrome", "Chrome")},
        )


async def _stop_driver(driver: Playwright | None) -> None:
    if driver is not None:
        with contextlib.suppress(Exception):
            await driver.stop()

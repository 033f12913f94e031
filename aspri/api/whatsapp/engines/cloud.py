"""The ``cloud`` engine: the official WhatsApp Cloud API (Meta Graph API).

Inbound arrives as webhooks (``/webhooks/whatsapp``, see ``cloud_webhook.py``): the signature is
checked on the raw body before anything is parsed, then each message of the batch becomes a
``WhatsAppMessage``: text as it is, any type ASPRI does not read recorded by its name; a message
with a file is put to the inbound rate limit and queued, the webhook answered, and the file
downloaded into the media store afterwards (``deferred.py``, ``cloud_media.py``); a malformed
item is logged and skipped without losing the others.
Outbound is ``POST {api_base}/{phone-number-id}/messages`` with the access token, through one
shared HTTP client: free text inside the person's 24-hour window, the configured template
outside it, rate limits and outages retried (``cloud_send.py``). Delivery statuses arrive in the
same webhooks and are recorded through ``report_status``. A voice note is uploaded first
(``POST /{phone-number-id}/media``), then sent as an ``audio`` message naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import msgspec
from opentelemetry.trace import SpanKind

from aspri.api.whatsapp.channel import Channel, ChannelError, OnMessage
from aspri.api.whatsapp.engines import cloud_media, cloud_send
from aspri.config import ConfigError, Settings
from aspri.media import MediaStore
from aspri.media.transcribe import Transcriber, with_transcript
from aspri.schemas import WhatsAppMessage, chatid
from aspri.schemas.api import Body
from aspri.schemas.media import Media, Unsupported, Voice
from aspri.schemas.status import WhatsAppStatus
from aspri.telemetry.tracing import tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")

MAX_TEXT = 4096


# Meta's webhook payload (only the parts ASPRI reads; unknown fields are ignored).
class _Text(msgspec.Struct):
    body: str


class _Context(msgspec.Struct):
    id: str | None = None


class _Message(msgspec.Struct, rename={"from_": "from"}):
    from_: str
    id: str
    type: str
    timestamp: str = "0"
    text: _Text | None = None
    context: _Context | None = None
    image: cloud_media.File | None = None
    audio: cloud_media.File | None = None
    video: cloud_media.File | None = None
    document: cloud_media.File | None = None
    sticker: cloud_media.File | None = None
    location: cloud_media.Location | None = None
    contacts: list[cloud_media.ContactCard] = msgspec.field(default_factory=list)
    reaction: cloud_media.Reaction | None = None
    interactive: cloud_media.Interactive | None = None
    button: cloud_media.Button | None = None


class _Pending(msgspec.Struct):
    """A media message queued until its file is fetched: Meta's message (the parts ASPRI
    reads), and the sender's profile name from the same webhook."""

    message: _Message
    name: str | None = None


class _Profile(msgspec.Struct):
    name: str | None = None


class _Contact(msgspec.Struct):
    wa_id: str
    profile: _Profile | None = None


class _StatusError(msgspec.Struct):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None


class _Status(msgspec.Struct):
    """One entry of ``statuses[]``: what became of a message the business sent."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    status: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    recipient_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    timestamp: str | int = "0"
    errors: list[_StatusError] = msgspec.field(default_factory=list)


class _Metadata(msgspec.Struct):
    phone_number_id: str | None = None


class _Value(msgspec.Struct):
    metadata: _Metadata | None = None
    contacts: list[Any] = msgspec.field(default_factory=list)
    messages: list[Any] = msgspec.field(default_factory=list)
    statuses: list[Any] = msgspec.field(default_factory=list)
    errors: list[Any] = msgspec.field(default_factory=list)


class _Change(msgspec.Struct):
    field: str
    value: Any = None


class _Entry(msgspec.Struct):
    changes: list[Any] = msgspec.field(default_factory=list)


class _Root(msgspec.Struct):
    object: str
    entry: list[Any] = msgspec.field(default_factory=list)


class InvalidWebhook(ValueError):
    """The body is not JSON at all (a wrong shape inside valid JSON is only logged)."""


class WebhookReceipt(Body):
    """What one webhook delivery contained; ``eventIds`` names the event each message became
    (the tag ``aspri.event_id`` of its trace)."""

    messages: int = 0
    statuses: int = 0
    ignored: int = 0
    event_ids: list[str] = msgspec.field(default_factory=list)
    pending: int = 0
    """Media messages admitted and queued: recorded (with an eventId of their own) once their
    files are fetched, after this answer."""
    problems: list[str] = msgspec.field(default_factory=list)
    """Why each ignored item was ignored, naming the item and its field (the delivery is still
    200: Meta would otherwise redeliver the whole batch, good items included)."""


class CloudChannel(Channel):
    name = "cloud"
    max_text = MAX_TEXT
    voice_out = True
    defers_media = True

    def __init__(
        self,
        settings: Settings,
        *,
        timeout_s: float = 15.0,
        send_attempts: int = 4,
        retry_wait_s: float = 1.0,
    ) -> None:
        missing = [
            name
            for name, value in (
                ("WHATSAPP_CLOUD_VERIFY_TOKEN", settings.whatsapp_cloud_verify_token),
                ("WHATSAPP_CLOUD_APP_SECRET", settings.whatsapp_cloud_app_secret),
                ("WHATSAPP_CLOUD_ACCESS_TOKEN", settings.whatsapp_cloud_access_token),
                ("WHATSAPP_CLOUD_PHONE_NUMBER_ID", settings.whatsapp_cloud_phone_number_id),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"WHATSAPP_ENGINE=cloud needs {', '.join(missing)}")
        self.verify_token = settings.whatsapp_cloud_verify_token or ""
        self._secret = (settings.whatsapp_cloud_app_secret or "").encode()
        self._token = settings.whatsapp_cloud_access_token or ""
        self.phone_number_id = settings.whatsapp_cloud_phone_number_id or ""
        self.api_base = settings.whatsapp_cloud_api_base.rstrip("/")
        self.timeout_s = timeout_s
        self.send_attempts = send_attempts
        self.retry_wait_s = retry_wait_s
        """First pause between tries of a transient refusal (then doubling, with jitter)."""
        self.template = settings.whatsapp_cloud_template
        self.template_lang = settings.whatsapp_cloud_template_lang
        self.media = MediaStore(
            settings.media_dir, settings.media_max_bytes, settings.media_retention_days
        )
        self.transcriber = Transcriber.from_settings(settings)
        self._client: httpx.AsyncClient | None = None
        self._on_message: OnMessage | None = None
        self._state = "disconnected"

    async def start(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._client = httpx.AsyncClient(
            base_url=self.api_base,
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=self.timeout_s,
        )
        self._state = "working"

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._state = "disconnected"

    def state(self) -> str:
        return self._state

    # ------------------------------------------------------------------ outbound

    async def send_text(self, chat_id: str, text: str) -> str:
        """Free text inside the person's 24-hour window; outside it the configured template,
        or a permanent refusal (``cloud_send``); rate limits and outages are retried."""
        return await self._send_text(chat_id, text, None)

    async def send_reply(self, chat_id: str, text: str, quoted: str) -> str:
        """The text quoting ``quoted`` (Meta's ``context.message_id``); a template, outside the
        window, quotes nothing."""
        return await self._send_text(chat_id, text, quoted)

    async def _send_text(self, chat_id: str, text: str, quoted: str | None) -> str:
        number = self._number(chat_id)
        body = cloud_send.text_body(number, text)
        if quoted:
            body["context"] = {"message_id": quoted}
        closed = await self._window_closed(chat_id)
        if closed is not None:
            if self.template is None:
                raise cloud_send.window_closed(number, closed)
            body = cloud_send.template_body(number, text, self.template, self.template_lang)
            log.info("outside the 24-hour window: sent as the template")
        return await self._post_message(body)

    async def send_voice(self, chat_id: str, path: Path, voice: Voice) -> str:
        """Meta's flow: upload the file (``POST /{phone-number-id}/media``, multipart), then
        send an ``audio`` message naming the uploaded id, marked as a voice note. Outside the
        24-hour window only a template goes through: refused, so the text (as the template)
        is sent instead."""
        number = self._number(chat_id)
        closed = await self._window_closed(chat_id)
        if closed is not None:
            raise cloud_send.window_closed(number, closed)
        data = await asyncio.to_thread(path.read_bytes)
        mime = voice.mime or "audio/ogg"
        assert self._client is not None  # _number checked
        with _tracer.start_as_current_span(
            "graph.facebook.com upload",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST"},
        ) as span:
            try:
                response = await self._client.post(
                    f"/{self.phone_number_id}/media",
                    data={"messaging_product": "whatsapp", "type": mime},
                    files={"file": ("voice.ogg", data, mime)},
                )
            except httpx.HTTPError as exc:
                raise ChannelError(
                    f"the Graph API is unreachable ({type(exc).__name__})", 503
                ) from exc
            span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            raise cloud_send.refusal(response)
        try:
            media_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise ChannelError(
                "the Graph API answered the upload without a media id", 502
            ) from None
        return await self._post_message(cloud_send.audio_body(number, media_id))

    def _number(self, chat_id: str) -> str:
        """The recipient's number, once the channel can send to it at all."""
        if self._client is None:
            raise ChannelError("the Cloud API channel is not started", 503)
        if chatid.is_group(chat_id):
            raise ChannelError("the WhatsApp Cloud API cannot send to groups", 502)
        return chatid.number(chat_id)

    async def _window_closed(self, chat_id: str) -> int | None:
        """When the person last wrote, if their 24-hour window is closed; else None."""
        if self.last_inbound is None:
            return None
        last = await self.last_inbound(chat_id)
        return last if time.time() * 1000 >= last + cloud_send.WINDOW_MS else None

    async def _post_message(self, body: dict[str, Any]) -> str:
        """``POST /{phone-number-id}/messages``; the new message's id."""
        assert self._client is not None  # _number checked
        path = f"/{self.phone_number_id}/messages"
        with _tracer.start_as_current_span(
            "graph.facebook.com send",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "aspri.message_type": body["type"]},
        ) as span:
            try:
                response = await cloud_send.post(
                    self._client, path, body, attempts=self.send_attempts, wait_s=self.retry_wait_s
                )
            except ChannelError as exc:
                if isinstance(exc.__cause__, httpx.HTTPError):
                    self._state = "disconnected"
                raise
            span.set_attribute("http.response.status_code", response.status_code)
        self._state = "working"
        try:
            return str(response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise ChannelError("the Graph API answered without a message id", 502) from None

    async def working(self, chat_id: str, message_id: str) -> None:
        """Meta's read receipt with a typing indicator: the message (and every earlier one)
        shows read, and "typing…" shows for 25 s or until the reply."""
        if self._client is None or not message_id:
            return
        body = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
            "typing_indicator": {"type": "text"},
        }
        try:
            response = await self._client.post(f"/{self.phone_number_id}/messages", json=body)
        except httpx.HTTPError as exc:
            log.info("typing indicator not sent", extra={"error": type(exc).__name__})
            return
        if response.status_code >= 400:
            log.info("typing indicator refused", extra={"error": str(cloud_send.refusal(response))})

    # ------------------------------------------------------------------ inbound

    def _file_of(self, message: _Message) -> tuple[str, cloud_media.File] | None:
        """The kind and the file part of a message carrying one (fetched later); else None."""
        for name in cloud_media.FILE_TYPES:
            file = getattr(message, name)
            if message.type == name and file is not None:
                voice = name == "audio" and file.voice
                return ("voice" if voice else name), file
        return None

    def _media_of(self, message: _Message) -> Media | None:
        """What a message without a file carries besides text."""
        if message.type == "text" and message.text is not None:
            return None
        if message.type == "location" and message.location is not None:
            return cloud_media.location(message.location)
        if message.type == "contacts":
            return cloud_media.contact(message.contacts)
        if message.type == "reaction" and message.reaction is not None:
            return cloud_media.reaction(message.reaction)
        if message.type in ("interactive", "button"):
            return cloud_media.interactive(message.interactive, message.button)
        log.info("unsupported message type recorded", extra={"type": message.type})
        return Unsupported(type=message.type)

    async def resolve(self, pending: bytes) -> WhatsAppMessage | None:
        """A queued media message with its file downloaded (outages retried with the send
        policy) and a voice note transcribed; the reference says why when there are no bytes."""
        try:
            queued = msgspec.json.decode(pending, type=_Pending)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        found = self._file_of(queued.message)
        if found is None:
            return None
        if self._client is None:
            raise ChannelError("the Cloud API channel is not started", 503)
        kind, file = found
        media = await cloud_media.download(
            self._client,
            self.media,
            kind,
            file,
            attempts=self.send_attempts,
            wait_s=self.retry_wait_s,
        )
        media = await with_transcript(self.transcriber, self.media, media)
        return _to_message(queued.message, queued.name, media)

    def signature_ok(self, body: bytes, header: str | None) -> bool:
        """``X-Hub-Signature-256`` is ``sha256=`` + the hex HMAC-SHA256 of the raw body, keyed
        with the app secret."""
        if not header or not header.startswith("sha256="):
            return False
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())

    def verify(self, mode: str | None, token: str | None) -> bool:
        """Meta's subscription handshake: ``hub.mode=subscribe`` with our verify token."""
        return (
            mode == "subscribe"
            and token is not None
            and hmac.compare_digest(token.encode(), self.verify_token.encode())
        )

    async def handle(self, body: bytes) -> WebhookReceipt:
        """Deliver every text message of a (signature-checked) webhook body."""
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidWebhook(f"the body is not JSON: {exc}") from None
        receipt = WebhookReceipt()
        root = _convert(raw, _Root, "webhook", receipt)
        if root is None:
            return receipt
        if root.object != "whatsapp_business_account":
            log.warning("webhook for another object ignored", extra={"object": root.object})
            receipt.ignored += 1
            return receipt
        for raw_entry in root.entry:
            entry = _convert(raw_entry, _Entry, "entry", receipt)
            for raw_change in entry.changes if entry else []:
                change = _convert(raw_change, _Change, "change", receipt)
                if change is None:
                    continue
                if change.field != "messages":
                    log.info("webhook field ignored", extra={"field": change.field})
                    receipt.ignored += 1
                    continue
                value = _convert(change.value, _Value, "value", receipt)
                if value is not None:
                    await self._handle_value(value, receipt)
        log.info(
            "webhook handled",
            extra={
                "messages": receipt.messages,
                "statuses": receipt.statuses,
                "ignored": receipt.ignored,
            },
        )
        return receipt

    async def _handle_value(self, value: _Value, receipt: WebhookReceipt) -> None:
        number_id = value.metadata.phone_number_id if value.metadata else None
        if number_id is not None and number_id != self.phone_number_id:
            log.warning(
                "webhook for another phone number ignored", extra={"phoneNumberId": number_id}
            )
            receipt.ignored += len(value.messages) + len(value.statuses)
            return
        names: dict[str, str] = {}
        for raw in value.contacts:
            contact = _convert(raw, _Contact, "contact", receipt)
            if contact and contact.profile and contact.profile.name:
                names[contact.wa_id] = contact.profile.name
        for raw in value.messages:
            message = _convert(raw, _Message, "message", receipt)
            if message is None:
                continue
            if self._on_message is None or self.defer is None:
                raise ChannelError("the Cloud API channel is not started", 503)
            name = names.get(message.from_)
            found = self._file_of(message)
            media = self._media_of(message) if found is None else cloud_media.unresolved(*found)
            inbound = _to_message(message, name, media)
            if inbound is None:
                _ignore(receipt, "message", "from or timestamp: not a phone number or Unix time")
                continue
            if found is None:
                event_id = await self._on_message(inbound)
            else:  # the limit first; the download after the 200 (``deferred.py``)
                pending = msgspec.json.encode(_Pending(message=message, name=name))
                event_id = await self.defer(inbound, pending)
                if event_id is None:
                    receipt.pending += 1
            receipt.messages += 1
            if event_id:
                receipt.event_ids.append(event_id)
        for raw in value.statuses:
            status = _convert(raw, _Status, "status", receipt)
            report = _to_status(status, receipt) if status is not None else None
            if report is not None:
                await self.report_status(report)
                receipt.statuses += 1
        for error in value.errors:
            log.warning("webhook reported an error", extra={"error": error})


def _convert(raw: Any, kind: type[Any], what: str, receipt: WebhookReceipt) -> Any:
    """``raw`` as ``kind``, or None (logged, counted as ignored) when its shape is unexpected."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        _ignore(receipt, what, str(exc))
        return None


def _ignore(receipt: WebhookReceipt, what: str, error: str) -> None:
    log.warning("webhook item of an unexpected shape ignored", extra={"item": what, "error": error})
    receipt.ignored += 1
    receipt.problems.append(f"{what}: {error}")


def _to_status(status: _Status, receipt: WebhookReceipt) -> WhatsAppStatus | None:
    """A ``statuses[]`` entry as the gateway records it (its first error, if any, explains a
    ``failed``); None when its recipient or time cannot be read."""
    try:
        chat_id = chatid.normalize(status.recipient_id)
        seconds = int(status.timestamp)
    except ValueError as exc:
        _ignore(receipt, "status", f"recipient_id or timestamp: {exc}")
        return None
    error = status.errors[0] if status.errors else _StatusError()
    title = error.title or error.message
    detail = (error.error_data or {}).get("details")
    return WhatsAppStatus(
        chat_id=chat_id,
        message_id=status.id,
        status=status.status,
        timestamp=seconds * 1000,
        channel="cloud",
        recipient_id=status.recipient_id,
        error_code=None if error.code is None else str(error.code)[:200],
        error_title=title[:2000] if title else None,
        error_detail=str(detail)[:2000] if detail is not None else None,
    )


def _to_message(message: _Message, name: str | None, media: Media | None) -> WhatsAppMessage | None:
    try:
        chat_id = chatid.normalize(message.from_)
        seconds = int(message.timestamp)
    except ValueError:
        return None
    caption = getattr(media, "caption", None)
    return WhatsAppMessage(
        id=message.id,
        chat_id=chat_id,
        from_=chat_id,
        from_name=name,
        body=message.text.body if media is None and message.text else caption or "",
        type="chat" if media is None else message.type,
        media=media,
        timestamp=seconds * 1000,
        quoted_message_id=message.context.id if message.context else None,
    )

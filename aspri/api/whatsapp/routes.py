"""The gateway's REST API (DESIGN.md §5): send, history, chats, contacts, health, login QR.

History, chats and contacts are answered from the event log and its projections, so they are
the same with every engine and survive restarts.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from aspri.api.access import caller_of, check_reserved
from aspri.api.common import RETRY_AFTER, ApiError
from aspri.api.whatsapp.gateway import MAX_MESSAGE_BYTES, Gateway
from aspri.api.whatsapp.history import read_page, valid_cursor
from aspri.schemas import chatid
from aspri.schemas.api import (
    ChatSummary,
    Contact,
    Health,
    MessagePage,
    SendMessageRequest,
    SentMessage,
    SessionQr,
    Success,
)
from aspri.streams import keys
from aspri.streams.health import instances

log = logging.getLogger(__name__)


def parse_chat_id(value: str, field: str) -> str:
    try:
        return chatid.normalize(value)
    except chatid.InvalidChatId as exc:
        raise ApiError(400, "invalid_phone_number", f"{field}: {exc}") from None


def check_text(value: str, field: str) -> None:
    if not value.strip():
        raise ApiError(400, "invalid_request", f"{field}: must not be empty")
    size = len(value.encode())
    if size > MAX_MESSAGE_BYTES:
        raise ApiError(
            413, "message_too_large", f"{field}: {size} bytes; at most {MAX_MESSAGE_BYTES} allowed"
        )


@post("/api/send-message", status_code=200, tags=["messages"])
async def send_message(
    data: JSONBody[SendMessageRequest],
    gateway: NamedDependency[Gateway],
    request: Request[Any, Any, Any],
    idempotency_header: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
) -> Success[SentMessage]:
    """Send a text to a number or chat id; the same idempotency key sends only once. A hidden
    linked id (``…@lid``) known to be a person's is that person's chat.

    Long texts are split at the channel's limit. ``voice``: the text is spoken and sent as a
    voice note when a speech service is configured and the engine sends voice notes, else as
    text with ``voiceError`` saying why. ``replyTo``: the id of the message this answers, quoted
    as ``REPLY_QUOTE`` says (``first``: only when the person wrote again after it). 502/503 when
    the channel could not send (nothing is recorded as sent then; retry with the same key); 422
    when it refused the message for good (``channel_refused``, or ``outside_window`` on the
    Cloud API): recorded in the chat as failed and told to the owners, and no retry will change
    it. Keys starting with ``engine:`` or ``cron:`` and ``causationId`` (which marks a message
    as answered) are the engine's own: 403 for any other caller.
    """
    chat_id = gateway.identities.person(parse_chat_id(data.phone_number, "phoneNumber"))
    check_text(data.message, "message")
    key = data.idempotency_key or idempotency_header
    if key is not None and not 1 <= len(key) <= 256:
        raise ApiError(400, "invalid_request", "idempotencyKey: 1 to 256 characters")
    check_reserved(request, "idempotencyKey", key)
    if data.causation_id is not None and caller_of(request) != "engine":
        reason = "causationId: only the engine marks which message a reply answers"
        raise ApiError(403, "reserved_field", reason)
    if data.reply_to is not None and not 1 <= len(data.reply_to) <= 256:
        raise ApiError(400, "invalid_request", "replyTo: a message id of 1 to 256 characters")
    sent = await gateway.outbox.send(
        chat_id,
        data.message,
        key=key,
        causation_id=data.causation_id,
        voice=data.voice,
        reply_to=data.reply_to,
    )
    if data.causation_id is not None:
        gateway.working.replied(data.causation_id)
    return Success(data=sent)


@get("/api/messages/{phone_number:str}", tags=["messages"])
async def get_messages(
    phone_number: FromPath[str],
    gateway: NamedDependency[Gateway],
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    before: Annotated[
        str | None, QueryParameter(description="nextBefore of the previous page")
    ] = None,
) -> Success[MessagePage]:
    """A chat's messages, newest first; page with ``before``."""
    chat_id = gateway.identities.person(parse_chat_id(phone_number, "phoneNumber"))
    if before is not None and not valid_cursor(before):
        reason = "before: must be a nextBefore value like 1718000000000-0"
        raise ApiError(400, "invalid_request", reason)
    if not await gateway.redis.exists(keys.chat(chat_id)):
        raise ApiError(404, "unknown_chat", f"no messages with {chat_id} yet")
    return Success(data=await read_page(gateway.log, chat_id, limit, before))


@get("/api/chats", tags=["chats"])
async def get_chats(
    gateway: NamedDependency[Gateway], limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100
) -> Success[list[ChatSummary]]:
    """Chats by last activity, newest first."""
    return Success(data=await gateway.directory.chats(limit))


@get("/api/contacts/search", tags=["chats"])
async def search_contacts(
    gateway: NamedDependency[Gateway],
    q: Annotated[str, QueryParameter(min_length=1, max_length=200, description="name or number")],
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 20,
) -> Success[list[Contact]]:
    """Contacts whose name or number contains ``q`` (case-insensitive)."""
    if not q.strip():
        raise ApiError(400, "invalid_request", "q: must not be blank")
    return Success(data=await gateway.directory.search(q, limit))


@get("/api/session/qr", tags=["session"])
async def session_qr(gateway: NamedDependency[Gateway]) -> Success[SessionQr]:
    """The login QR code while the channel waits for a scan (``browser`` engine), else null."""
    state = gateway.channel.state()
    qr = await gateway.channel.qr() if state == "scan_qr" else None
    return Success(data=SessionQr(state=state, qr=qr))


@get("/health", tags=["health"], opt={"public": True}, security=[{}])
async def health(gateway: NamedDependency[Gateway]) -> Response[Success[Health]]:
    """``ok`` when the log answers and the channel works, ``degraded`` when the channel does
    not, ``down`` (503) when the log is unreachable; ``details.down`` names what is not
    working, ``details.engineWorkers`` counts the engine workers whose health record is live."""
    channel_state = gateway.channel.state()
    workers: int | None = None
    try:
        workers = sum(i.up for i in await instances(gateway.redis, "engine"))
        log_state = "ok"
    except Exception as exc:  # any failure here means the log is unusable
        log.warning("health: event log unreachable", extra={"error": str(exc)})
        log_state = "unreachable"
    checks = (("eventLog", log_state == "ok"), ("channel", channel_state == "working"))
    down = [name for name, ok in checks if not ok]
    status = "down" if log_state != "ok" else "degraded" if down else "ok"
    body = Health(
        status=status,
        channel=channel_state,
        engine=gateway.engine,
        details={
            "eventLog": log_state,
            "down": down,
            "engineWorkers": workers,
            "liveSubscribers": gateway.hub.subscribers,
        },
    )
    if status == "down":
        return Response(Success(data=body), status_code=503, headers=RETRY_AFTER)
    return Response(Success(data=body))


ROUTES = [send_message, get_messages, get_chats, search_contacts, session_qr, health]

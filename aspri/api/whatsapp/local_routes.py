"""The ``local`` engine's web chat: the page, what a person types, and the live stream.

The page is plain HTML/CSS/JS from ``static/`` (no CDN, no build step). It loads history and
chats from the REST API, posts typed messages to ``/api/local/messages`` and listens on
``/api/local/events`` (Server-Sent Events) for every message recorded while it is open; on each
(re)connect it reloads from the log, so a dropped stream never loses a message. The page is the
person's phone: it acknowledges the assistant's messages (``/api/local/acks``) as ``delivered``
once it has them and ``read`` once they are shown in the open chat, and shows their ticks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from aspri import apikey
from aspri.api.access import COOKIE, PUBLIC, Access, caller_of
from aspri.api.whatsapp.assistant import Assistant
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import Gateway
from aspri.api.whatsapp.routes import check_text, parse_chat_id
from aspri.schemas.api import (
    AssistantState,
    LocalAckRequest,
    LocalAcks,
    LocalMessageAccepted,
    LocalMessageRequest,
    StatusUpdate,
    Success,
    Typing,
)
from aspri.schemas.status import WhatsAppStatus
from aspri.streams import keys

STATIC = Path(__file__).parent / "static"
CHATS_SHOWN = 500
"""The chats the page lists (``/api/chats?limit=500``), and so the ones it marks."""
_ENC = msgspec.json.Encoder()
log = logging.getLogger(__name__)

_LOGIN_NEEDED = """<!doctype html><meta charset="utf-8"><title>ASPRI: sign in</title>
<body style="font-family:sans-serif;max-width:36em;margin:4em auto">
<h1>Sign in to the ASPRI web chat</h1><p>{reason}</p>
<p>Open the link that <code>aspri up</code> printed, or run <code>aspri link</code> on this
machine for a new one. API clients send the key as <code>X-API-Key</code>.</p></body>"""


def _login_needed(reason: str) -> Response[bytes]:
    body = _LOGIN_NEEDED.format(reason=reason).encode()
    return Response(body, status_code=401, media_type=MediaType.HTML)


@get("/", include_in_schema=False, opt={PUBLIC: True})
async def home() -> Redirect:
    return Redirect("/chat")


@get("/chat", media_type=MediaType.HTML, include_in_schema=False, opt={PUBLIC: True})
async def chat_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The page, for a signed-in browser; else a short page saying how to sign in."""
    if caller_of(request) is None:
        return _login_needed("This browser is not signed in.")
    return Response(
        (STATIC / "chat.html").read_bytes(),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-cache"},
    )


@get("/chat/login", include_in_schema=False, opt={PUBLIC: True})
async def login(
    gateway: NamedDependency[Gateway], access: NamedDependency[Access], token: FromQuery[str] = ""
) -> Response[Any]:
    """Trade a one-time link (``aspri up`` / ``aspri link``) for a session cookie."""
    if access.key is None:
        return Redirect("/chat")
    checked = apikey.check_login_token(access.key, token)
    if checked is None:
        return _login_needed("This sign-in link is not valid or has expired.")
    nonce, expires = checked
    if not await gateway.redis.set(keys.login_used(nonce), 1, nx=True, exat=expires):
        log.warning("a used web-chat sign-in link was presented again")
        return _login_needed("This sign-in link was already used.")
    cookie = Cookie(
        key=COOKIE,
        value=apikey.session_cookie(access.key),
        max_age=apikey.SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
    )
    return Redirect("/chat", cookies=[cookie])


@post("/api/local/messages", status_code=202, tags=["local"])
async def post_local_message(
    data: JSONBody[LocalMessageRequest], gateway: NamedDependency[Gateway]
) -> Success[LocalMessageAccepted]:
    """A message typed by a person in the local web chat: recorded as an inbound message
    (``throttled`` when the sender is over the inbound rate limit: recorded, not answered)."""
    chat_id = parse_chat_id(data.from_, "from")
    check_text(data.text, "text")
    name = data.name.strip()[:100] if data.name and data.name.strip() else None
    event, _ = await gateway.inbox.record(LocalChannel.inbound(chat_id, data.text, name))
    accepted = LocalMessageAccepted(
        event_id=event.event_id, chat_id=chat_id, throttled=event.data.throttled
    )
    return Success(data=accepted)


@post("/api/local/acks", status_code=200, tags=["local"])
async def post_local_acks(
    data: JSONBody[LocalAckRequest], gateway: NamedDependency[Gateway]
) -> Success[LocalAcks]:
    """The page got or showed these assistant messages: recorded as their ``delivered`` or
    ``read`` status (once each; a status never moves back; an unknown id is recorded too)."""
    chat_id = parse_chat_id(data.chat_id, "chatId")
    recorded = changed = 0
    for message_id in dict.fromkeys(data.message_ids):
        status = WhatsAppStatus(
            chat_id=chat_id, message_id=message_id, status=data.status, channel="local"
        )
        outcome = await gateway.statuses.record(status)
        recorded += not outcome.duplicate
        changed += outcome.changed
    return Success(data=LocalAcks(recorded=recorded, changed=changed))


@get("/api/local/events", tags=["local"])
async def local_events(
    gateway: NamedDependency[Gateway],
    chat_id: Annotated[str | None, QueryParameter(name="chatId")] = None,
) -> ServerSentEvent:
    """Every message recorded from now on (only ``chatId``'s when given), as SSE ``message``
    events whose data is a ChatMessage, every move of an outbound message's delivery status as
    a ``status`` event (a StatusUpdate), and ``typing`` events (a Typing) while the assistant
    works on a reply; a comment every 15 s keeps it open."""
    wanted = parse_chat_id(chat_id, "chatId") if chat_id else None
    return ServerSentEvent(_events(gateway, wanted))


async def _events(gateway: Gateway, wanted: str | None) -> AsyncIterator[ServerSentEventMessage]:
    yield ServerSentEventMessage(data=None, comment="connected", retry=1000)
    async for message in gateway.hub.subscribe():
        if message is None:
            yield ServerSentEventMessage(data=None, comment="ping")
        elif wanted is not None and message.chat_id != wanted:
            continue
        elif isinstance(message, StatusUpdate):
            yield ServerSentEventMessage(event="status", data=_ENC.encode(message).decode())
        elif isinstance(message, Typing):
            yield ServerSentEventMessage(event="typing", data=_ENC.encode(message).decode())
        else:
            yield ServerSentEventMessage(
                event="message", id=message.entry_id, data=_ENC.encode(message).decode()
            )


@get("/api/local/assistant", tags=["local"])
async def assistant_state(
    gateway: NamedDependency[Gateway], assistant: NamedDependency[Assistant]
) -> Success[AssistantState]:
    """Whether the model answers (from the engine workers' health records: ``unknown`` while
    no worker runs) and who each chat of ``/api/chats`` is to the assistant (owner, approved
    contact, stranger waiting for pairing)."""
    chats = await gateway.directory.chats(CHATS_SHOWN)
    people = await assistant.people([c.chat_id for c in chats])
    return Success(data=AssistantState(model=await assistant.model(), people=people))


def local_routes() -> list[ControllerRouterHandler]:
    assets = create_static_files_router(
        path="/chat/assets", directories=[STATIC], include_in_schema=False, opt={PUBLIC: True}
    )
    return [
        home,
        chat_page,
        login,
        post_local_message,
        post_local_acks,
        local_events,
        assistant_state,
        assets,
    ]

"""The ``local`` engine's web chat: the page, what a person types, and the live stream.

The page is plain HTML/CSS/JS from ``static/`` (no CDN, no build step). It loads history and
chats from the REST API, posts typed messages to ``/api/local/messages`` and listens on
``/api/local/events`` (Server-Sent Events) for every message recorded while it is open; on each
(re)connect it reloads from the log, so a dropped stream never loses a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import Gateway
from aspri.api.whatsapp.routes import check_text, parse_chat_id
from aspri.schemas.api import LocalMessageAccepted, LocalMessageRequest, Success

STATIC = Path(__file__).parent / "static"
_ENC = msgspec.json.Encoder()


@get("/", include_in_schema=False)
async def home() -> Redirect:
    return Redirect("/chat")


@get("/chat", media_type=MediaType.HTML, include_in_schema=False)
async def chat_page() -> Response[bytes]:
    return Response(
        (STATIC / "chat.html").read_bytes(),
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-cache"},
    )


@post("/api/local/messages", status_code=202, tags=["local"])
async def post_local_message(
    data: JSONBody[LocalMessageRequest], gateway: NamedDependency[Gateway]
) -> Success[LocalMessageAccepted]:
    """A message typed by a person in the local web chat: recorded as an inbound message."""
    chat_id = parse_chat_id(data.from_, "from")
    check_text(data.text, "text")
    name = data.name.strip()[:100] if data.name and data.name.strip() else None
    event, _ = await gateway.inbox.record(LocalChannel.inbound(chat_id, data.text, name))
    return Success(data=LocalMessageAccepted(event_id=event.event_id, chat_id=chat_id))


@get("/api/local/events", tags=["local"])
async def local_events(
    gateway: NamedDependency[Gateway],
    chat_id: Annotated[str | None, QueryParameter(name="chatId")] = None,
) -> ServerSentEvent:
    """Every message recorded from now on (only ``chatId``'s when given), as SSE ``message``
    events whose data is a ChatMessage; a comment every 15 s keeps the connection open."""
    wanted = parse_chat_id(chat_id, "chatId") if chat_id else None
    return ServerSentEvent(_events(gateway, wanted))


async def _events(gateway: Gateway, wanted: str | None) -> AsyncIterator[ServerSentEventMessage]:
    yield ServerSentEventMessage(data=None, comment="connected", retry=1000)
    async for message in gateway.hub.subscribe():
        if message is None:
            yield ServerSentEventMessage(data=None, comment="ping")
        elif wanted is None or message.chat_id == wanted:
            yield ServerSentEventMessage(
                event="message", id=message.entry_id, data=_ENC.encode(message).decode()
            )


def local_routes() -> list[ControllerRouterHandler]:
    assets = create_static_files_router(
        path="/chat/assets", directories=[STATIC], include_in_schema=False
    )
    return [home, chat_page, post_local_message, local_events, assets]

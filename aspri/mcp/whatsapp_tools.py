"""The four WhatsApp tools: send a message, read a chat, list chats, search contacts.

Text arguments also accept numbers (``coerce_numbers_to_str``): models and CLI clients often
send a phone number as a JSON number.

Each is a thin call to the WhatsApp gateway's REST API; the descriptions are what the model
reads to decide when and how to call them, so they say what the tool does, when to use it and
the exact formats of its arguments. The arguments are the original ASPRI v2's (``phoneNumber``,
``message``, ``dryRun``, ``limit``, ``query``), so its MCP clients and prompts work unchanged.

Annotations are evaluated when the tools are defined (no ``from __future__ import
annotations``): FastMCP builds the schemas from them, and some refer to settings.
"""

from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from aspri.mcp import meta
from aspri.mcp.gateway import GatewayError, Gateways, parse, path_segment
from aspri.mcp.meta import ToolContext
from aspri.mcp.models import (
    ChatList,
    ChatSummary,
    Contact,
    ContactList,
    MessagePage,
    SentMessage,
)
from aspri.schemas.chatid import InvalidChatId, normalize

PhoneNumber = Annotated[
    str,
    Field(
        min_length=1,
        coerce_numbers_to_str=True,
        description="A phone number in international format with the country code, e.g. "
        "+6281234567890 or 6281234567890 (spaces and dashes are fine), or a chat id "
        "`<digits>@c.us` such as 6281234567890@c.us as returned by whatsapp_get_chats or "
        "whatsapp_search_contacts.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Optional. A unique string for this one action, e.g. a UUID. Repeating "
        "the call with the same key returns the first result instead of doing it twice. "
        "Leave it out unless you might repeat this exact call."
    ),
]

READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def register(server: FastMCP, gateways: Gateways) -> None:
    """Add the WhatsApp tools to ``server``."""
    service = gateways.whatsapp

    @server.tool(
        title="Send a WhatsApp message",
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=True),
    )
    async def whatsapp_send_message(
        phoneNumber: PhoneNumber,
        message: Annotated[
            str,
            Field(
                min_length=1,
                coerce_numbers_to_str=True,
                description="The text to send, exactly as the recipient should read it. "
                "WhatsApp formatting works (*bold*, _italic_); long texts are split "
                "automatically.",
            ),
        ],
        ctx: ToolContext,
        dryRun: Annotated[
            bool,
            Field(
                description="true: only check the recipient, send nothing. Use it before "
                "scheduling a job that will message someone: it fails unless the recipient is "
                "an owner, an approved contact or an allowed group."
            ),
        ] = False,
        idempotencyKey: IdempotencyKey = None,
    ) -> SentMessage:
        """Send a WhatsApp text message to a person or chat on the user's behalf.

        Use it to deliver a message the user asked you to send to someone, or to notify a
        contact. The text goes out as written, so pass the final wording. Returns the sent
        message's id and chat id; `duplicate: true` means a message with this idempotency key
        was already sent and nothing new went out. With dryRun nothing is sent: the result has
        the recipient's chatId, no messageId and parts 0.
        """
        if dryRun:
            try:
                chat_id = normalize(phoneNumber)
            except InvalidChatId as exc:
                raise GatewayError(f"phoneNumber: {exc}", status=400) from None
            return SentMessage(
                message_id=None, chat_id=chat_id, event_id=None, parts=0, duplicate=False
            )
        key = meta.idempotency_key(ctx, idempotencyKey)
        body = {
            "phoneNumber": phoneNumber,
            "message": message,
            "idempotencyKey": key,
            "causationId": meta.causation_id(ctx),
            "voice": meta.voice(ctx) or None,
        }
        data = await gateways.call(
            service,
            "POST",
            "/api/send-message",
            json={k: v for k, v in body.items() if v is not None},
            idempotency_key=key,
        )
        return parse(SentMessage, data, service)

    @server.tool(title="Read a WhatsApp chat", annotations=READ_ONLY)
    async def whatsapp_get_messages(
        phoneNumber: PhoneNumber,
        limit: Annotated[
            int, Field(ge=1, le=100, description="How many messages to return, 1-100.")
        ] = 10,
        before: Annotated[
            str | None,
            Field(
                description="Paging cursor: the nextBefore value of the previous page, to get "
                "older messages. Leave it out for the newest messages."
            ),
        ] = None,
    ) -> MessagePage:
        """Read the message history of one WhatsApp chat, newest message first.

        Use it to look up what was said in a conversation (for example "what did Budi say
        about the meeting?"). Messages with fromMe true were sent by the assistant or the
        user's account. For older messages call again with before set to nextBefore.
        """
        data = await gateways.call(
            service,
            "GET",
            f"/api/messages/{path_segment(phoneNumber)}",
            params={"limit": limit, "before": before},
        )
        return parse(MessagePage, data, service)

    @server.tool(title="List WhatsApp chats", annotations=READ_ONLY)
    async def whatsapp_get_chats(
        limit: Annotated[
            int, Field(ge=1, le=200, description="How many chats to return, 1-200.")
        ] = 20,
    ) -> ChatList:
        """List the WhatsApp chats, the most recently active first.

        Each chat has its chat id, the contact's name, the last message and when it was
        sent. Use it to see who the user talked to recently, or to find a chat id to pass to
        whatsapp_get_messages or whatsapp_send_message.
        """
        data = await gateways.call(service, "GET", "/api/chats", params={"limit": limit + 1})
        chats = parse(list[ChatSummary], data, service)
        return ChatList(chats=chats[:limit], more=len(chats) > limit)

    @server.tool(title="Search WhatsApp contacts", annotations=READ_ONLY)
    async def whatsapp_search_contacts(
        query: Annotated[
            str,
            Field(
                min_length=1,
                coerce_numbers_to_str=True,
                description="Part of a name or of a phone number, e.g. 'budi' or '0812'; "
                "case does not matter.",
            ),
        ],
    ) -> ContactList:
        """Find WhatsApp contacts whose name or number contains the query.

        Use it when the user refers to a person by name ("send Budi a message") to get their
        chat id. If several contacts match, ask the user which one they mean; if none match,
        ask for the phone number.
        """
        data = await gateways.call(service, "GET", "/api/contacts/search", params={"q": query})
        return ContactList(contacts=parse(list[Contact], data, service))

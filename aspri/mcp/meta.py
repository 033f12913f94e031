"""What a caller passes beside a tool's arguments, in the request's ``_meta``.

The engine puts there what the model must not see or invent: the W3C ``traceparent`` (and
``tracestate``) of its turn, the ``idempotencyKey`` it derived from the event and the call, the
``causationId`` of the message being answered, and ``voice`` when the reply is to be spoken.
"""

from __future__ import annotations

from typing import Any

from mcp.server.fastmcp import Context
from mcp.server.session import ServerSession
from mcp.shared.context import RequestContext

ToolContext = Context[ServerSession, Any, Any]
"""The context FastMCP injects into a tool that declares a parameter of this type."""


def request_meta(request: RequestContext[ServerSession, Any, Any] | None) -> dict[str, Any]:
    """The ``_meta`` fields of the current request (empty outside a request)."""
    if request is None or request.meta is None:
        return {}
    return request.meta.model_dump(exclude_none=True)


def _meta_of(ctx: ToolContext) -> dict[str, Any]:
    try:
        request = ctx.request_context
    except ValueError:  # called outside a request
        return {}
    return request_meta(request)


def idempotency_key(ctx: ToolContext, argument: str | None) -> str | None:
    """The key to forward: the caller's ``_meta.idempotencyKey`` first, else the argument.

    The engine's key is derived from the event it handles, so it is the same when a turn is
    replayed; the model's argument is only a fallback for clients that cannot set ``_meta``.
    """
    key = _meta_of(ctx).get("idempotencyKey")
    if isinstance(key, str) and key:
        return key
    return argument or None


def causation_id(ctx: ToolContext) -> str | None:
    value = _meta_of(ctx).get("causationId")
    return value if isinstance(value, str) and value else None


def voice(ctx: ToolContext) -> bool:
    """Whether the engine asks for the reply as a voice note (the chat turned ``/voice on``)."""
    return _meta_of(ctx).get("voice") is True


def turn_value(ctx: ToolContext, name: str) -> str | None:
    """A string the engine set in ``_meta`` for the turn (``person``, ``chatId``): who the call
    acts for, decided by the engine from the turn's principal, never by the model."""
    value = _meta_of(ctx).get(name)
    return value if isinstance(value, str) and value else None

"""``whatsapp:status``: what became of a message the assistant sent (the delivery lifecycle).

A message the channel took is ``sent``; the channel later reports ``delivered`` and ``read``
(Cloud API ``statuses`` webhooks, the browser engine's acks, the web chat page), or ``failed``.
``queued`` is a message the channel holds but has not sent yet (the browser engine's pending
ack). Each report is one event in ``chat:{chatId}``; the latest status of a message is the fold
of its reports by ``RANK``, so a late ``delivered`` never undoes ``read`` and a repeat changes
nothing. A report for a message id nobody knows is recorded like any other.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY

QUEUED, SENT, DELIVERED, READ, FAILED = "queued", "sent", "delivered", "read", "failed"
RANK = {QUEUED: 0, SENT: 1, DELIVERED: 2, READ: 3, FAILED: 4}
"""How far a status is along the lifecycle; the fold keeps the highest. ``failed`` is final.
A status name outside this table (a channel's new one) is recorded but never folded."""

OUTSIDE_WINDOW = "outside the 24-hour window"
"""The reason of a Cloud API send refused because the person's customer-service window closed
and no template is configured."""

Short = Annotated[str, msgspec.Meta(max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]


class WhatsAppStatus(Payload, frozen=True, kw_only=True):
    """``whatsapp:status`` v1: a channel's report on one outbound message.

    ``messageId`` is the channel's id of the message (the Cloud API's ``wamid``); it is empty
    for a send the channel refused outright, which then carries its ``body`` and ``sendKey``
    so the history can show what was not sent. ``errorCode``/``errorTitle`` explain a
    ``failed``; ``timestamp`` is when the channel says it happened (Unix ms).
    """

    chat_id: Short
    message_id: Short = ""
    status: Short
    timestamp: int = 0
    channel: Short = ""
    recipient_id: Short | None = None
    error_code: Short | None = None
    error_title: Text | None = None
    error_detail: Text | None = None
    body: str | None = None
    send_key: Short | None = None


def rank(status: str) -> int:
    """The status's place in the lifecycle; -1 for a name the fold does not know."""
    return RANK.get(status, -1)


REGISTRY.register("whatsapp:status", WhatsAppStatus)

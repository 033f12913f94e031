"""The cron handler: what a ``cronjob:trigger`` does in the engine.

- ``{chatId | phoneNumber, message}``: send the message;
- ``{chatId | phoneNumber, prompt}``: a turn in that chat's session, its answer sent; the
  original ASPRI v2's ``{prompt, context: {requestedBy, sessionId}}`` is a prompt for the chat
  of ``requestedBy`` (ASPRI's session is that chat's; ``sessionId`` is not needed);
- no target (or nothing to say): logged and acked — a job may exist only to be recorded.

The target is checked again when the job fires, whoever created it (any REST caller with the
key acts for the owner): a job that targets a stranger sends nothing. A prompt turn runs with
the rights of its target: an owner's chat gets an owner's turn, any other chat a turn scoped to
that chat.

Exactly one message per trigger: the send's idempotency key is ``cron:<jobId>:<scheduledTime>``,
so a redelivered trigger (or a second trigger for the same run) sends nothing new.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from aspri.agents.access import Access
from aspri.agents.turns import REFUSED, Conversation
from aspri.schemas import CronTrigger, Event, chatid
from aspri.streams import Permanent

log = logging.getLogger(__name__)


def chat_id_of(target: str) -> str:
    """A chat id for a payload's ``chatId`` or ``phoneNumber`` (``+62 812-3`` → ``628123@c.us``)."""
    if "@" in target:
        return target.strip()
    digits = "".join(ch for ch in target if ch.isdigit())
    if target.strip().startswith("00"):
        digits = digits[2:]
    return f"{digits}@c.us"


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) and value.strip() else None


def target_of(payload: dict[str, Any]) -> str | None:
    """The chat a payload is for: ``chatId``, ``phoneNumber``, or the original's
    ``context.requestedBy``."""
    context = payload.get("context")
    requested = _text(context, "requestedBy") if isinstance(context, dict) else None
    return _text(payload, "chatId") or _text(payload, "phoneNumber") or requested


class Triggers:
    """Handles cron triggers for one worker."""

    def __init__(self, conversation: Conversation, access: Access) -> None:
        self.conversation = conversation
        self.access = access

    async def on_trigger(self, event: Event[CronTrigger]) -> None:
        trigger = event.data
        payload = trigger.payload or {}
        target = target_of(payload)
        message, prompt = _text(payload, "message"), _text(payload, "prompt")
        span = trace.get_current_span()
        span.set_attribute("aspri.job_id", trigger.job_id)
        info = {"job": trigger.job_id, "scheduled": trigger.scheduled_time}
        if target is None or (message is None and prompt is None):
            log.info("trigger without a chat or text: recorded only", extra=info)
            span.set_attribute("aspri.trigger.action", "none")
            return
        try:
            chatid.normalize(target)
        except chatid.InvalidChatId as exc:  # no retry can make it a chat
            raise Permanent(f"job {trigger.job_id}: the target is not a chat: {exc}") from None
        await self.access.refresh()
        principal = self.access.principal_for(chat_id_of(target))
        if principal is None:
            log.warning("trigger to a chat that is not allowed: nothing sent", extra=info)
            span.set_attribute("aspri.trigger.action", "refused")
            return
        key = f"cron:{trigger.job_id}:{trigger.scheduled_time}"
        if message is not None:
            span.set_attribute("aspri.trigger.action", "message")
            sent = await self.conversation.send(target, message, key, event.event_id)
            if REFUSED in sent:  # the gateway recorded it as failed and told the owner
                span.set_attribute("aspri.trigger.action", "refused")
                return
            log.info("trigger message sent", extra={**info, "duplicate": sent.get("duplicate")})
            return
        assert prompt is not None
        span.set_attribute("aspri.trigger.action", "prompt")
        await self.conversation.on_prompt(event, principal, prompt)

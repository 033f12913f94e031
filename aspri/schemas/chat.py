"""Events the engine records in ``chat:{chatId}`` besides messages: turns, resets, voice.

A chat stream holds the messages in and out (``whatsapp:message``, written by the gateway), the
engine's ``chat:turn`` records and ``chat:reset`` markers. A session is a fold of that stream, so
these records are what lets any worker, after any crash, know which messages were answered.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY


class ToolCallRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One tool call the model made during a turn."""

    name: str
    position: str
    """``<model step>.<index in that step>``: stable across a replayed turn."""
    idempotency_key: str | None = None
    ok: bool = True
    ms: float = 0.0
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class TurnTimings(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where the time of a turn went, in milliseconds."""

    fold_ms: float = 0.0
    agent_ms: float = 0.0
    """The whole agent run, model calls and tool calls included."""
    llm_ms: float = 0.0
    tools_ms: float = 0.0
    send_ms: float = 0.0
    total_ms: float = 0.0


class VoiceSetting(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Whether a chat's replies are spoken (``/voice on``), and the problem the chat was last
    told about when they could not be (None: nothing to tell, or it works again)."""

    on: bool = False
    told: str | None = None


class ChatVoice(Payload, frozen=True, kw_only=True):
    """``chat:voice`` v1: the chat's voice setting changed — ``/voice on|off``, or the chat was
    told why a reply went out as text (``told``), or that problem went away."""

    chat_id: str
    cause: str
    """The event that changed it (the ``/voice`` command, or the message the reply answered)."""
    on: bool
    told: str | None = None
    by: str | None = None
    """Who typed ``/voice`` (None for a change the engine made)."""

    @property
    def setting(self) -> VoiceSetting:
        return VoiceSetting(on=self.on, told=self.told)


class ChatTurn(Payload, frozen=True, kw_only=True):
    """``chat:turn`` v1: the engine answered the chat once.

    ``cause`` is the eventId the reply was sent for (the last answered user message, or the cron
    trigger); the reply message carries it as ``causationId``, which is how a fold recognises a
    reply that was sent by a worker that died before recording its turn.
    """

    chat_id: str
    cause: str
    kind: str = "reply"
    """``reply`` (the model), ``command`` (a slash command), ``cron`` (a prompt trigger),
    ``failed`` (the apology after the last delivery), ``model-offline`` (free text answered
    at once with what to do, the model being known unreachable), ``recovered`` (recorded
    after a crash), ``ignored`` (not for the assistant: a stranger, a group not allowed or not
    addressed), ``pairing`` (a stranger's messages, answered only by the pairing notice)."""
    answered: list[str] = msgspec.field(default_factory=list)
    """Event ids of the user messages this turn answered, oldest first."""
    through: str | None = None
    """Entry id in ``chat:{chatId}`` of the last answered message."""
    reply_message_id: str | None = None
    reply_event_id: str | None = None
    tool_calls: list[ToolCallRecord] = msgspec.field(default_factory=list)
    model: str | None = None
    llm_calls: int = 0
    timings: TurnTimings = msgspec.field(default_factory=TurnTimings)
    job_id: str | None = None
    scheduled_time: int | None = None
    deliveries: int = 1
    error: str | None = None
    voice: VoiceSetting | None = None
    """The chat's voice setting as the turn leaves it, so a fold that starts at this turn knows
    it without reading further back (None: a turn recorded before voice replies existed: off)."""


class ChatReset(Payload, frozen=True, kw_only=True):
    """``chat:reset`` v1: a new session starts at entry ``start`` (the ``/reset`` message).

    Messages before ``start`` leave the session; the ``/reset`` message itself stays until its
    reply is recorded, so a worker that dies mid-command still answers it once.
    """

    chat_id: str
    start: str
    cause: str


class ChatCoalesced(Payload, frozen=True, kw_only=True):
    """``chat:coalesced`` v1: user messages the engine answers only together with later ones.

    More messages waited than a turn can show the model (older than the prompt window of
    ``SESSION_HISTORY_LIMIT`` messages, or than the session), so no turn answers them one by
    one: the next turn answers the newest, and this record says which older ones it stands
    for, so none goes unanswered without a trace. ``through`` is the entry id in
    ``chat:{chatId}`` up to which everything is now handled; ``messages`` the event ids the fold
    saw (a backlog longer than it reads is covered by ``through`` alone).
    """

    chat_id: str
    cause: str
    """The event whose handling found the backlog."""
    messages: list[str] = msgspec.field(default_factory=list)
    through: str
    reason: str


REGISTRY.register("chat:turn", ChatTurn)
REGISTRY.register("chat:reset", ChatReset)
REGISTRY.register("chat:coalesced", ChatCoalesced)
REGISTRY.register("chat:voice", ChatVoice)

"""Turns: answer every unanswered user message of a chat, exactly once, whatever crashes.

A turn folds the chat's session, takes the unanswered user messages (several quick ones become
one turn; slash commands each get their own), runs the agent or the command, sends the reply
through the MCP ``whatsapp_send_message`` tool and records a ``chat:turn`` in the chat's stream.
Every side effect carries a key derived from the last answered message's eventId (the *cause*):

- the reply: ``engine:<cause>:reply`` (the gateway sends a key once), with ``causationId``
  = cause, so the logged reply itself marks the messages answered;
- the model's tool calls: ``engine:<cause>:tool:<step>.<index>``;
- the turn record: ``engine:<cause>:turn``.

A worker killed before the send replays the turn (same keys: nothing doubles); killed after the
send, the next fold sees the reply in the log and only records the turn; killed after the
record, the redelivered event finds nothing unanswered and is a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.messages import BaseMessage
from opentelemetry import trace

from aspri.agents.access import Access, Principal
from aspri.agents.agent import Agent, TurnContext, run_agent
from aspri.agents.backlog import coalesce
from aspri.agents.commands import Commands
from aspri.agents.images import ImageParts
from aspri.agents.memory import Recall, memory_of, memory_person
from aspri.agents.model_state import ModelState, remedy
from aspri.agents.outbound import Outbound, SendRefused
from aspri.agents.prompt import as_messages, trigger_message
from aspri.agents.scope import Scope
from aspri.agents.session import Message, Session, SessionStore
from aspri.agents.tools import McpTools
from aspri.agents.voice import VoiceReplies
from aspri.agents.working import Typing
from aspri.config import Settings
from aspri.schemas import REGISTRY, CronTrigger, Event, WhatsAppMessage, chatid
from aspri.schemas.chat import ChatTurn, TurnTimings
from aspri.streams import ids, keys
from aspri.streams.log import EventLog
from aspri.streams.table import Table
from aspri.telemetry.tracing import tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.agents")

APOLOGY = (
    "Sorry, I could not answer that just now: the assistant's model or tools are not "
    "reachable. Please try again later. Commands like /help still work."
)
MAX_TURNS_PER_EVENT = 50
"""A safety bound on the turns of one event (each answers at least one message)."""
REFUSED = "refused"
"""In a send's result: why the channel refused it for good (then it has no message id)."""


def pairing_notice(name: str, code: str) -> str:
    return (
        f"Hi! I am {name}, a personal assistant, and I only talk with people my owner has "
        f"approved. If you know my owner, give them this code: {code} (valid for one hour)."
    )


def segments(pending: list[Message]) -> list[list[Message]]:
    """Consecutive plain messages form one turn; each slash command is a turn of its own."""
    out: list[list[Message]] = []
    for m in pending:
        if m.is_command or not out or out[-1][-1].is_command:
            out.append([m])
        else:
            out[-1].append(m)
    return out


class Conversation:
    """Runs the turns of chats: replies to user messages and cron prompt turns."""

    def __init__(
        self,
        settings: Settings,
        log_: EventLog,
        sessions: SessionStore,
        tools: McpTools,
        agent: Agent,
        commands: Commands,
        access: Access,
        model: ModelState,
        recall: Recall,
        outbound: Outbound,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.outbound = outbound
        self.images = ImageParts(settings)
        self.typing = Typing(log_.redis, settings.typing_refresh_s)
        self.recall = recall
        self.access = access
        self.model = model
        self.log = log_
        self.sessions = sessions
        self.tools = tools
        self.agent = agent
        self.commands = commands
        self.voice = VoiceReplies(settings, log_)
        self.clock = clock
        self.zone = ZoneInfo(settings.timezone)
        self.turns = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.zone)

    # ------------------------------------------------------------------ user messages

    async def on_message(self, event: Event[WhatsAppMessage]) -> None:
        """Answer what the chat of ``event`` has left unanswered (often: nothing).

        Everything unanswered when the event is first folded is answered (quick messages
        together, commands one by one); messages arriving meanwhile are left to their own
        events, so one busy chat cannot hold a worker while other chats wait.
        """
        if event.data.from_me:
            return
        chat_id = event.data.chat_id
        if event.data.self_chat:
            await self.access.refresh()
            await self.access.link(chat_id, event.event_id)
        limit: str | None = None
        # brought up to date with the session, in the same round trip: the access rules the
        # turn decides by and the memory its prompt shows
        folds: list[Table[Any]] = [self.access.table, self.recall.store.table(memory_of(chat_id))]
        for _ in range(MAX_TURNS_PER_EVENT):
            began = time.perf_counter()
            session = await self.sessions.load(chat_id, folds)
            if session.sent_unrecorded:
                await self._recover(session, event)
                continue
            if await coalesce(self.log, session, event):
                continue
            pending = session.unanswered()
            if limit is None and pending:
                limit = pending[-1].entry_id
            pending = [m for m in pending if limit and not ids.after(m.entry_id, limit)]
            if not pending:
                return
            turns = segments(pending)
            segment = turns[0]
            principal = self._principal(chat_id, segment)
            if principal is None:
                if chatid.is_group(chat_id):
                    await self._ignore(session, segment, event, pairing=False)
                else:  # a stranger: nothing of theirs is answered, at most a pairing notice
                    await self._ignore(session, pending, event, pairing=True)
                continue
            fold_ms = (time.perf_counter() - began) * 1000
            try:
                await self._answer(session, segment, event, fold_ms, principal)
            except Exception as exc:
                if event.deliveries >= self.settings.max_deliveries:
                    await self._apologize(session, segment, event, exc)
                raise
            if len(turns) == 1:  # all answered up to the limit: no fold needed to know it
                return
        log.warning("turn bound reached", extra={"chat": chat_id, "turns": MAX_TURNS_PER_EVENT})

    def _principal(self, chat_id: str, segment: list[Message]) -> Principal | None:
        """Who this turn runs for; None when the segment is left unanswered: a stranger's
        direct chat; in a group, a command from someone who is not an owner, or talk in a
        group that is not allowlisted or does not address the assistant. An owner's command
        works in any group (``/allow-group`` is typed in the group it allows)."""
        if not chatid.is_group(chat_id):
            kind = self.access.kind(chat_id)
            return None if kind == "stranger" else Principal(kind, chat_id, chat_id)
        first = segment[0]
        if first.is_command:
            owner = self.access.is_owner(first.sender)
            return Principal("owner", chat_id, first.sender) if owner else None
        if self.access.group_allowed(chat_id) and any(
            self.access.addressed(m.body) for m in segment
        ):
            return Principal("contact", chat_id, segment[-1].sender)
        return None

    async def _ignore(
        self, session: Session, messages: list[Message], event: Event[Any], *, pairing: bool
    ) -> None:
        """Mark ``messages`` answered without a reply (a stranger's get at most the pairing
        notice), so they never reach the model or a command, now or after an approval."""
        cause = messages[-1]
        base = f"engine:{cause.event_id}"
        code = None
        if (
            pairing
            and self.settings.dm_policy == "pairing"
            and not chatid.is_group(session.chat_id)
        ):
            code = await self.access.request_pairing(session.chat_id, cause.event_id, cause.name)
        sent: dict[str, Any] = {}
        if code is not None:
            notice = pairing_notice(self.settings.assistant_name, code)
            try:
                sent = await self.send(session.chat_id, notice, f"{base}:reply", cause.event_id)
            except Exception as exc:  # the notice is a courtesy: never let it block the chat
                if event.deliveries < self.settings.max_deliveries:
                    raise
                log.warning("pairing notice not sent", extra={"error": repr(exc)[:300]})
                code = None
        turn = ChatTurn(
            chat_id=session.chat_id,
            cause=cause.event_id,
            kind="pairing" if code else "ignored",
            answered=[m.event_id for m in messages],
            through=cause.entry_id,
            reply_message_id=sent.get("messageId"),
            reply_event_id=sent.get("eventId"),
            deliveries=event.deliveries,
            voice=session.voice,
        )
        await self._record(turn, base, event)

    async def _answer(
        self,
        session: Session,
        segment: list[Message],
        event: Event[Any],
        fold_ms: float,
        principal: Principal,
    ) -> None:
        cause = segment[-1]
        base = f"engine:{cause.event_id}"
        command = segment[0].is_command
        began = time.perf_counter()
        with _tracer.start_as_current_span(
            "turn",
            attributes={
                "aspri.event_id": event.event_id,
                "aspri.cause_id": cause.event_id,
                "aspri.chat_id": session.chat_id,
                "aspri.turn.kind": "command" if command else "reply",
                "aspri.turn.answered": len(segment),
                "aspri.deliveries": event.deliveries,
            },
        ) as span:
            span.set_attribute("aspri.principal", principal.kind)
            kind = "command" if command else "reply"
            async with self.typing.during(session.chat_id, cause.message_id, cause.event_id):
                if command:
                    text = await self.commands.run(session, cause, base, principal)
                    ctx = None
                elif not await self.model.ready():
                    text, ctx, kind = self._offline(), None, "model-offline"
                else:
                    ctx = await self._context(principal, base, cause.event_id, memory_current=True)
                    history = as_messages(
                        session.history(cause.entry_id), self.access.is_owner, self.images.part
                    )
                    try:
                        text = await run_agent(self.agent, history, ctx)
                    except Exception:
                        if self.model.answering:  # a failure that did not open the breaker
                            raise
                        text, ctx, kind = self._offline(), None, "model-offline"
            span.set_attribute("aspri.turn.kind", kind)
            agent_ms = (time.perf_counter() - began) * 1000
            spoken = kind == "reply" and session.voice.on
            sent, send_ms = await self._send(
                session.chat_id,
                text,
                f"{base}:reply",
                cause.event_id,
                voice=spoken,
                reply_to=cause.message_id,
            )
            if spoken and REFUSED not in sent:
                await self.voice.after_reply(session, sent, base, cause.event_id, self.send)
            turn = ChatTurn(
                chat_id=session.chat_id,
                cause=cause.event_id,
                kind=kind,
                answered=[m.event_id for m in segment],
                through=cause.entry_id,
                reply_message_id=sent.get("messageId"),
                reply_event_id=sent.get("eventId"),
                tool_calls=ctx.tool_calls if ctx else [],
                model=self.settings.model_name if kind == "reply" else None,
                llm_calls=ctx.llm_calls if ctx else 0,
                timings=self._timings(ctx, fold_ms, agent_ms, send_ms, began),
                deliveries=event.deliveries,
                error=sent.get(REFUSED),
                voice=session.voice,
            )
            await self._record(turn, base, event)
            _annotate(span, turn)
        self.recall.after_turn(session, segment, principal)

    # ------------------------------------------------------------------ cron prompts

    async def on_prompt(self, event: Event[CronTrigger], principal: Principal, prompt: str) -> None:
        """A cron job with a ``prompt``: a turn in the chat's session, its answer sent once,
        with the rights of the chat it targets (an owner's, or only that chat's)."""
        chat_id = principal.chat_id
        trigger = event.data
        base = f"cron:{trigger.job_id}:{trigger.scheduled_time}"
        began = time.perf_counter()
        session = await self.sessions.load(chat_id)
        fold_ms = (time.perf_counter() - began) * 1000
        if event.event_id in session.recorded:
            return
        if event.event_id in session.replied:  # sent by a worker that died before recording
            reply = session.replied[event.event_id]
            await self._record(
                ChatTurn(
                    chat_id=chat_id,
                    cause=event.event_id,
                    kind="recovered",
                    reply_event_id=reply.event_id,
                    deliveries=event.deliveries,
                    job_id=trigger.job_id,
                    scheduled_time=trigger.scheduled_time,
                    voice=session.voice,
                ),
                base,
                event,
            )
            return
        with _tracer.start_as_current_span(
            "turn",
            attributes={
                "aspri.event_id": event.event_id,
                "aspri.chat_id": chat_id,
                "aspri.turn.kind": "cron",
                "aspri.job_id": trigger.job_id,
                "aspri.deliveries": event.deliveries,
            },
        ) as span:
            ctx: TurnContext | None = await self._context(principal, base, event.event_id)
            fired = datetime.fromtimestamp(trigger.scheduled_time / 1000, self.zone)
            history = session.history(session.last_id)
            messages: list[BaseMessage] = as_messages(
                history, self.access.is_owner, self.images.part
            )
            messages.append(
                trigger_message(trigger.job_name, prompt, fired, quoted=not principal.is_owner)
            )
            kind = "cron"
            unrun = f'I could not run your scheduled prompt "{trigger.job_name}"'
            if not await self.model.ready():
                text, ctx, kind = self._offline(unrun), None, "model-offline"
            else:
                assert ctx is not None
                try:
                    text = await run_agent(self.agent, messages, ctx)
                except Exception:
                    if not self.model.answering:  # the breaker opened: no retry can help
                        text, ctx, kind = self._offline(unrun), None, "model-offline"
                    else:
                        if event.deliveries >= self.settings.max_deliveries:
                            note = f"{unrun}. {APOLOGY}"
                            await self._send_quietly(chat_id, note, base, event.event_id)
                        raise
            span.set_attribute("aspri.turn.kind", kind)
            agent_ms = (time.perf_counter() - began) * 1000 - fold_ms
            spoken = kind == "cron" and session.voice.on
            sent, send_ms = await self._send(chat_id, text, base, event.event_id, voice=spoken)
            if spoken:
                await self.voice.after_reply(session, sent, base, event.event_id, self.send)
            turn = ChatTurn(
                chat_id=chat_id,
                cause=event.event_id,
                kind=kind,
                reply_message_id=sent.get("messageId"),
                reply_event_id=sent.get("eventId"),
                tool_calls=ctx.tool_calls if ctx else [],
                model=self.settings.model_name if ctx else None,
                llm_calls=ctx.llm_calls if ctx else 0,
                timings=self._timings(ctx, fold_ms, agent_ms, send_ms, began),
                deliveries=event.deliveries,
                job_id=trigger.job_id,
                scheduled_time=trigger.scheduled_time,
                error=sent.get(REFUSED),
                # as it is now: the chat may have changed it while the prompt ran
                voice=(await self.sessions.load(chat_id)).voice,
            )
            await self._record(turn, base, event)
            _annotate(span, turn)

    # ------------------------------------------------------------------ pieces

    def _offline(self, lead: str = "I cannot answer that right now") -> str:
        """The answer to free text (or a cron prompt) while the model is known to be
        unreachable."""
        return (
            f"{lead}: my model ({self.settings.model_name}) is not "
            f"reachable ({self.model.problem}). {remedy(self.settings)} "
            "Ask me again once it runs. Commands like /help, /remind and /jobs still work."
        )

    async def _context(
        self, principal: Principal, base: str, cause: str, *, memory_current: bool = False
    ) -> TurnContext:
        return TurnContext(
            chat_id=principal.chat_id,
            now=self.now(),
            timezone=self.settings.timezone,
            key_base=base,
            model=self.settings.model_name,
            scope=Scope(principal, self.access, self.tools),
            person=memory_person(principal),
            cause=cause,
            memory=await self.recall.block(principal, current=memory_current),
        )

    @staticmethod
    def _timings(
        ctx: TurnContext | None, fold_ms: float, agent_ms: float, send_ms: float, began: float
    ) -> TurnTimings:
        return TurnTimings(
            fold_ms=round(fold_ms, 3),
            agent_ms=round(agent_ms, 3),
            llm_ms=round(ctx.llm_ms, 3) if ctx else 0.0,
            tools_ms=round(ctx.tools_ms, 3) if ctx else 0.0,
            send_ms=round(send_ms, 3),
            total_ms=round(fold_ms + (time.perf_counter() - began) * 1000, 3),
        )

    async def send(self, target: str, text: str, key: str, cause: str) -> dict[str, Any]:
        """Send ``text`` to the gateway, once per ``key`` (``Outbound``)."""
        sent, _ = await self._send(target, text, key, cause)
        return sent

    async def _send(
        self,
        target: str,
        text: str,
        key: str,
        cause: str,
        *,
        voice: bool = False,
        reply_to: str | None = None,
    ) -> tuple[dict[str, Any], float]:
        """``voice``: the gateway speaks it as a voice note when it can (else text and
        ``voiceError``); ``reply_to``: the message answered, quoted per ``REPLY_QUOTE``. A
        send the channel refused for good returns ``{REFUSED: why}``."""
        began = time.perf_counter()
        text = text.strip() or "(I have nothing to add.)"
        try:
            data = await self.outbound.send(
                target, text, key, cause, voice=voice, reply_to=reply_to
            )
        except SendRefused as exc:
            if not exc.permanent:
                raise
            # Recorded as failed by the gateway, the owner told: the turn ends here, unsent,
            # rather than running the model again for a send that cannot succeed.
            log.warning("send refused for good", extra={"key": key, "code": exc.code})
            data = {REFUSED: str(exc)}
        return data, (time.perf_counter() - began) * 1000

    async def _send_quietly(self, target: str, text: str, key: str, cause: str) -> bool:
        try:
            await self._send(target, text, key, cause)
        except Exception as exc:
            log.error("could not send the apology", extra={"error": repr(exc), "key": key})
            return False
        return True

    async def _record(self, turn: ChatTurn, base: str, event: Event[Any]) -> None:
        record = REGISTRY.event(turn, source="engine", causation_id=event.event_id)
        await self.log.append(keys.chat(turn.chat_id), record, idempotency_key=f"{base}:turn")
        self.turns += 1
        log.info(
            "turn recorded",
            extra={
                "chat": turn.chat_id,
                "kind": turn.kind,
                "answered": len(turn.answered),
                "tool_calls": len(turn.tool_calls),
                "ms": turn.timings.total_ms,
            },
        )

    async def _recover(self, session: Session, event: Event[Any]) -> None:
        """Record the turns whose reply went out but whose worker died before recording."""
        for cause, answered in session.sent_unrecorded.items():
            reply = session.replied.get(cause)
            turn = ChatTurn(
                chat_id=session.chat_id,
                cause=cause,
                kind="recovered",
                answered=[m.event_id for m in answered],
                through=answered[-1].entry_id if answered else None,
                reply_event_id=reply.event_id if reply else None,
                deliveries=event.deliveries,
                voice=session.voice,
            )
            await self._record(turn, f"engine:{cause}", event)

    async def _apologize(
        self, session: Session, segment: list[Message], event: Event[Any], exc: Exception
    ) -> None:
        """The last delivery failed: tell the person once, and record it, before the DLQ."""
        chat_id = session.chat_id
        cause = segment[-1]
        base = f"engine:{cause.event_id}"
        if not await self._send_quietly(chat_id, APOLOGY, f"{base}:reply", cause.event_id):
            return
        turn = ChatTurn(
            chat_id=chat_id,
            cause=cause.event_id,
            kind="failed",
            answered=[m.event_id for m in segment],
            through=cause.entry_id,
            deliveries=event.deliveries,
            error=f"{type(exc).__name__}: {exc}"[:500],
            voice=session.voice,
        )
        try:
            await self._record(turn, base, event)
        except Exception as record_exc:
            log.error("could not record the failed turn", extra={"error": repr(record_exc)})


def _annotate(span: trace.Span, turn: ChatTurn) -> None:
    span.set_attribute("aspri.llm.ms", turn.timings.llm_ms)
    span.set_attribute("aspri.llm.calls", turn.llm_calls)
    span.set_attribute("aspri.tool_calls", len(turn.tool_calls))
    span.set_attribute("aspri.tool_names", [c.name for c in turn.tool_calls])

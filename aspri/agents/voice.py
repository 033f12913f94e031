"""Voice replies per chat: ``/voice on|off``, and what became of each spoken reply.

The setting is a ``chat:voice`` event in the chat's stream, folded with the session, so it
survives restarts and every worker sees it. With it on, the model's replies (answers to
messages and to scheduled prompts) are sent with ``voice`` (the gateway speaks them,
``SPEECH_PROVIDER``); commands, reminders and errors stay text. A reply
the gateway could not speak goes out as text with the reason (``voiceError``): the chat is told
that reason once, in a text notice recorded as ``told``, and not again until the reason changes;
the next spoken reply clears it without a word.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aspri.agents.access import Principal
from aspri.agents.session import Message, Session
from aspri.config import Settings
from aspri.media.speech import NOT_CONFIGURED
from aspri.schemas import REGISTRY
from aspri.schemas.chat import ChatVoice, VoiceSetting
from aspri.streams import keys
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)

USAGE = "Usage: /voice on | off (replies as voice notes, or as text)"

Send = Callable[[str, str, str, str], Awaitable[Any]]
"""``(chat id, text, idempotency key, cause)``: sends a text once per key."""


def notice(reason: str) -> str:
    return (
        f"(Voice replies are on, but I sent that as text: {reason}. I will not say this again "
        "until voice notes work, or fail for another reason. /voice off turns them off.)"
    )


class VoiceReplies:
    """The ``/voice`` command and the record of each spoken reply's outcome."""

    def __init__(self, settings: Settings, log_: EventLog) -> None:
        self.settings = settings
        self.log = log_

    async def command(
        self, session: Session, message: Message, args: str, base: str, principal: Principal
    ) -> str:
        """``/voice`` shows the setting; ``/voice on|off`` changes it (once per command)."""
        now = session.voice
        choice = args.lower()
        if not choice:
            state = "on" if now.on else "off"
            problem = f" The last reply could not be spoken: {now.told}." if now.told else ""
            return f"Voice replies are {state} in this chat.{problem}\n{USAGE}"
        if choice not in ("on", "off"):
            return f"{USAGE}. They are {'on' if now.on else 'off'} now."
        on = choice == "on"
        told = NOT_CONFIGURED if on and self.settings.speech_provider == "none" else None
        setting = VoiceSetting(on=on, told=told)
        await self._record(session, setting, message.event_id, f"{base}:voice", principal.sender)
        if not on:
            return "OK: I will answer in text from now on."
        if told:
            return (
                f"Voice replies are on, but {told}, so my answers stay text until the owner "
                "sets one up."
            )
        return "OK: I will answer with voice notes from now on (commands stay text)."

    async def after_reply(
        self, session: Session, sent: dict[str, Any], base: str, cause: str, send: Send
    ) -> None:
        """Tell the chat once why a reply was not spoken; forget it once one was."""
        reason = sent.get("voiceError")
        reason = reason if isinstance(reason, str) and reason else None
        if reason == session.voice.told:
            return
        if reason is not None:
            log.info("voice reply sent as text", extra={"chat": session.chat_id})
            await send(session.chat_id, notice(reason), f"{base}:voice-notice", cause)
        setting = VoiceSetting(on=True, told=reason)
        await self._record(session, setting, cause, f"{base}:voice-told", None)

    async def _record(
        self, session: Session, setting: VoiceSetting, cause: str, key: str, by: str | None
    ) -> None:
        change = ChatVoice(
            chat_id=session.chat_id, cause=cause, on=setting.on, told=setting.told, by=by
        )
        event = REGISTRY.event(change, source="engine", causation_id=cause)
        await self.log.append(keys.chat(session.chat_id), event, idempotency_key=key)
        session.voice = setting  # the turn's own record carries it on

"""Slash commands: a working assistant without the model, and a deterministic way to drive it.

``/help``, ``/reset``, ``/status``, ``/jobs``, ``/remind <when> <text>``, ``/cancel <jobId>``,
``/remember <text>``, ``/forget <text or id>``, ``/memory`` (see ``memory.py``), ``/voice``
(see ``voice.py``),
and for owners ``/pair``, ``/allow``, ``/revoke``, ``/contacts``, ``/allow-group``,
``/revoke-group``. They never reach the LLM; jobs go through the same MCP tools the model uses,
with idempotency keys derived from the command message, so a replayed command does not create
or delete twice. They obey the turn's principal like the model's tools do: a contact's
commands see and touch only their own chat's jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aspri.agents import when
from aspri.agents.access import Access, Principal, as_chat_id
from aspri.agents.jobtext import describe_job, when_shown
from aspri.agents.memory import MEMORY_COMMANDS, Recall
from aspri.agents.model_state import ModelState, remedy
from aspri.agents.prompt import HELP
from aspri.agents.scope import targets
from aspri.agents.session import Message, Session
from aspri.agents.tools import McpTools, ToolFailed
from aspri.agents.voice import VoiceReplies
from aspri.config import Settings
from aspri.schemas import REGISTRY, chatid
from aspri.schemas.chat import ChatReset
from aspri.streams import keys
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)

MAX_JOB_PAGES = 20


OWNER_COMMANDS = frozenset(
    {"/pair", "/allow", "/revoke", "/contacts", "/allow-group", "/revoke-group"}
)


class Commands:
    """Runs one slash command and returns the reply text (the caller sends and records it)."""

    def __init__(
        self,
        settings: Settings,
        log_: EventLog,
        tools: McpTools,
        access: Access,
        model: ModelState,
        recall: Recall,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.recall = recall
        self.log = log_
        self.tools = tools
        self.access = access
        self.model = model
        self.clock = clock
        self.zone = ZoneInfo(settings.timezone)
        self.voice = VoiceReplies(settings, log_)

    async def run(self, session: Session, message: Message, base: str, principal: Principal) -> str:
        name, _, args = message.body.strip().partition(" ")
        name, args = name.lower(), args.strip()
        log.info(
            "slash command",
            extra={"command": name, "chat": session.chat_id, "principal": principal.kind},
        )
        try:
            if name in OWNER_COMMANDS:
                if not principal.is_owner:
                    return f"Only the owner of this assistant can use {name}."
                return await self._owner(name, args, session.chat_id, principal.sender, base)
            if name in ("/help", "/start"):
                return HELP
            if name == "/reset":
                return await self._reset(session, message, base)
            if name == "/status":
                return await self._status(session)
            if name == "/jobs":
                return await self._jobs(session.chat_id)
            if name == "/remind":
                return await self._remind(session.chat_id, args, base)
            if name == "/cancel":
                return await self._cancel(session.chat_id, args, base, principal)
            if name == "/voice":
                return await self.voice.command(session, message, args, base, principal)
            if name in MEMORY_COMMANDS:
                return await self.recall.command(name, args, message, base, principal)
        except ToolFailed as exc:
            return f"That did not work: {exc}"
        return f"I do not know the command {name}.\n\n{HELP}"

    async def _reset(self, session: Session, message: Message, base: str) -> str:
        reset = ChatReset(chat_id=session.chat_id, start=message.entry_id, cause=message.event_id)
        event = REGISTRY.event(reset, source="engine", causation_id=message.event_id)
        await self.log.append(keys.chat(session.chat_id), event, idempotency_key=f"{base}:reset")
        return "Done: I forgot our conversation. What shall we talk about?"

    async def _status(self, session: Session) -> str:
        jobs = [j for j in await self._all_jobs() if targets(j, session.chat_id)]
        running = sum(1 for j in jobs if j.get("status") == "running")
        history = [m for m in session.history(session.last_id)]
        return (
            f"Model: {self.settings.model_name} ({self.settings.llm_provider}), "
            f"{self._model_state()}\n"
            f"Conversation: {len(history)} messages (the last "
            f"{self.settings.session_history_limit} are remembered; a new conversation starts "
            f"after {self.settings.session_timeout_minutes} min of silence or /reset)\n"
            f"Jobs: {running} running, {len(jobs)} in total\n"
            f"Time: {self._now():%a %d %b %H:%M} {self.settings.timezone}"
        )

    def _model_state(self) -> str:
        since = datetime.fromtimestamp(self.model.since, self.zone)
        if self.model.answering:
            return f"answering since {since:%a %d %b %H:%M}"
        return (
            f"not answering since {since:%a %d %b %H:%M} ({self.model.problem}). "
            f"{remedy(self.settings)}"
        )

    async def _jobs(self, chat_id: str) -> str:
        jobs = [j for j in await self._all_jobs() if targets(j, chat_id)]
        if not jobs:
            return "You have no scheduled jobs. Create one with /remind, e.g. /remind in 10m tea"
        return "Your jobs:\n" + "\n".join(describe_job(j, self.zone) for j in jobs)

    async def _remind(self, chat_id: str, args: str, base: str) -> str:
        try:
            parsed = when.parse(args, self._now())
        except when.WhenError as exc:
            return str(exc)
        body: dict[str, Any] = {
            "name": f"Reminder: {parsed.text[:60]}",
            "timezone": self.settings.timezone,
            "payload": {"chatId": chat_id, "message": f"⏰ Reminder: {parsed.text}"},
        }
        if parsed.run_at is not None:
            body["runAt"] = parsed.run_at.isoformat(timespec="seconds")
        else:
            body["schedule"] = parsed.schedule
        job = await self.tools.call_data("cronjob_create", body, idempotency_key=f"{base}:remind")
        nxt = when_shown(job.get("nextRunAt"), self.zone) if isinstance(job, dict) else None
        job_id = job.get("jobId") if isinstance(job, dict) else None
        return (
            f"OK, I will remind you {parsed.describe()}: {parsed.text}"
            + (f"\nNext: {nxt}" if nxt and parsed.schedule else "")
            + f"\nid: {job_id} (/cancel {job_id} to delete it)"
        )

    async def _cancel(self, chat_id: str, args: str, base: str, principal: Principal) -> str:
        job_id = args.split()[0] if args else ""
        if not job_id:
            return "Usage: /cancel <jobId> (see /jobs for the ids)"
        key = f"{base}:cancel"
        try:
            job = await self.tools.call_data("cronjob_get", {"jobId": job_id})
        except ToolFailed:
            if not principal.is_owner:  # a job nobody can show is theirs is not deleted
                return f"There is no job {job_id} of yours. See /jobs for yours."
            # Gone: maybe deleted by this very command before a crash; the same key then
            # returns that first delete's result, and deletes nothing else (an owner may
            # delete any job, so this cannot reach further than the owner's own rights).
            try:
                await self.tools.call_data("cronjob_delete", {"jobId": job_id}, idempotency_key=key)
            except ToolFailed:
                return f"There is no job {job_id}. See /jobs for yours."
            return f"Deleted: {job_id}"
        if not isinstance(job, dict) or not targets(job, chat_id):
            return f"There is no job {job_id} of yours. See /jobs for yours."
        await self.tools.call_data("cronjob_delete", {"jobId": job_id}, idempotency_key=key)
        return f"Deleted: {job.get('name', job_id)}"

    async def _owner(self, name: str, args: str, chat_id: str, by: str, base: str) -> str:
        """The owner's access commands; each writes one ``access:events`` event, once."""
        key = f"{base}:access"
        await self.access.refresh()
        if name == "/contacts":
            return self._contacts()
        if name in ("/allow-group", "/revoke-group"):
            group = args.split()[0] if args else chat_id
            if not chatid.is_group(group):
                return f"Type {name} in the group itself, or give the group's id (…@g.us)."
            if name == "/allow-group":
                await self.access.allow_group(group, by, key)
                name_ = self.settings.assistant_name
                return f"OK: I will answer in this group when someone addresses me as {name_}."
            await self.access.revoke_group(group, by, key)
            return "OK: I will ignore this group from now on."
        if not args:
            return f"Usage: {name} <{'code' if name == '/pair' else 'phone number'}>"
        if name == "/pair":
            code = args.split()[0]
            paired = await self.access.pair(code, by, key)
            if paired is None:
                return f"There is no pending pairing code {code} (codes expire after an hour)."
            return f"Approved: {chatid.number(paired)} can talk to me now."
        target = as_chat_id(args)
        if target is None or chatid.is_group(target):
            return f"{args} is not a phone number with its country code (e.g. +62 812 3456 7890)."
        if name == "/allow":
            await self.access.allow(target, by, key)
            return f"Approved: {chatid.number(target)} can talk to me now."
        await self.access.revoke(target, by, key)
        return f"Revoked: I will no longer answer {chatid.number(target)}."

    def _contacts(self) -> str:
        state = self.access.state
        lines = [f"DM policy: {self.settings.dm_policy}"]
        owners = [chatid.number(o) for o in self.settings.owner_numbers]
        if state.linked and self.settings.whatsapp_engine == "browser":
            owners.append(f"{chatid.number(state.linked)} (this account)")
        lines.append("Owners: " + (", ".join(owners) or "(none set)"))
        lines.append(
            "Approved: " + (", ".join(chatid.number(c) for c in sorted(state.contacts)) or "none")
        )
        groups = sorted({*self.settings.allowed_groups, *state.groups})
        lines.append("Groups: " + (", ".join(groups) or "none"))
        pending = self.access.pending()
        if pending:
            lines.append("Waiting for /pair:")
            for p in pending:
                who = f"{p.name} {chatid.number(p.chat_id)}" if p.name else chatid.number(p.chat_id)
                lines.append(f"• {p.code} — {who}")
        return "\n".join(lines)

    async def _all_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        for page in range(MAX_JOB_PAGES):
            data = await self.tools.call_data("cronjob_list", {"offset": page * 100, "limit": 100})
            batch = data.get("jobs", []) if isinstance(data, dict) else []
            jobs += [j for j in batch if isinstance(j, dict)]
            if len(batch) < 100 or len(jobs) >= int(data.get("total", 0)):
                break
        return jobs

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.zone)

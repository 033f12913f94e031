"""What a turn's tool calls may touch, decided below the model.

Every tool call of the model passes ``Scope.check`` before it runs, whatever the model was told
or tricked into: on a contact's turn the tools act only on that turn's chat (send to it, read
it, its own jobs); listing chats and searching contacts are refused. On any turn a job may only
target an owner, an allowed contact or an allowlisted group. A refusal is a tool error the
model reads, so it can tell the person what it cannot do.
"""

from __future__ import annotations

from typing import Any

from aspri.agents.access import Access, Principal, as_chat_id, same_person
from aspri.agents.tools import McpTools, ToolFailed

OWNER_ONLY = frozenset({"whatsapp_get_chats", "whatsapp_search_contacts"})
CHAT_TOOLS = frozenset({"whatsapp_send_message", "whatsapp_get_messages"})
JOB_TOOLS = frozenset(
    {"cronjob_get", "cronjob_update", "cronjob_delete", "cronjob_start", "cronjob_stop"}
)


class Refused(Exception):
    """The call is outside the turn's scope; the text is what the model reads."""


def job_target(payload: Any) -> str | None:
    """The chat a job payload sends to (``chatId`` or ``phoneNumber``), as a chat id."""
    if not isinstance(payload, dict):
        return None
    for name in ("chatId", "phoneNumber", "chat_id", "phone_number"):
        value = payload.get(name)
        if isinstance(value, str) and value.strip():
            return as_chat_id(value) or value.strip()
    return None


def targets(job: Any, chat_id: str) -> bool:
    """Whether a job (as the cron tools return it) sends to ``chat_id``."""
    target = job_target(job.get("payload") if isinstance(job, dict) else None)
    return target is not None and same_person(target, chat_id)


class Scope:
    """The rules for the tool calls of one turn."""

    def __init__(self, principal: Principal, access: Access, tools: McpTools) -> None:
        self.principal = principal
        self.access = access
        self.tools = tools

    async def check(self, name: str, args: dict[str, Any]) -> None:
        """Return if the call may run; raise Refused with the reason otherwise."""
        own = self.principal.is_owner
        chat = self.principal.chat_id
        if "payload" in args and args["payload"] is not None:
            await self._check_job_target(args["payload"])
        if own:
            return
        if name in OWNER_ONLY:
            raise Refused(
                f"{name} is not available in this conversation: only the owner of this "
                "assistant can list chats or search contacts."
            )
        if name in CHAT_TOOLS:
            target = as_chat_id(str(args.get("phone_number", "")))
            if target is None or not same_person(target, chat):
                raise Refused(
                    f"{name} may only be used for this conversation ({chat}), not for another "
                    "chat: this person is not the owner."
                )
            return
        if name == "cronjob_create":
            return  # its payload was checked above (and must target this chat, see below)
        if name == "cronjob_list":
            return  # its result is filtered to this chat's jobs
        if name in JOB_TOOLS:
            await self._check_own_job(str(args.get("job_id", "")))
            return
        raise Refused(f"{name} is not available in this conversation.")

    def filter_jobs(self, data: Any) -> Any:
        """A ``cronjob_list`` page with only the jobs of this chat (non-owner turns)."""
        if self.principal.is_owner or not isinstance(data, dict):
            return data
        jobs = [j for j in data.get("jobs") or [] if targets(j, self.principal.chat_id)]
        return {**data, "jobs": jobs, "total": len(jobs)}

    async def _check_job_target(self, payload: Any) -> None:
        target = job_target(payload)
        if target is None:
            raise Refused("the job's payload needs a chatId (or phoneNumber) to send to.")
        if not self.principal.is_owner and not same_person(target, self.principal.chat_id):
            raise Refused(
                f"jobs created in this conversation may only send to it ({self.principal.chat_id})."
            )
        await self.access.refresh()
        if not self.access.may_target(target):
            raise Refused(
                f"{target} is not an owner, an approved contact or an allowed group of this "
                "assistant, so no job may send to it."
            )

    async def _check_own_job(self, job_id: str) -> None:
        try:
            job = await self.tools.call_data("cronjob_get", {"job_id": job_id})
        except ToolFailed:
            job = None
        if not targets(job, self.principal.chat_id):
            raise Refused(f"there is no job {job_id} in this conversation.")

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
MEMORY_TOOLS = frozenset({"memory_save", "memory_forget", "memory_search"})
"""They act on the turn's own person and chat, which the engine passes in ``_meta``."""
JOB_TOOLS = frozenset(
    {"cronjob_get", "cronjob_update", "cronjob_delete", "cronjob_start", "cronjob_stop"}
)


class Refused(Exception):
    """The call is outside the turn's scope; the text is what the model reads."""


TARGET_FIELDS = ("chatId", "phoneNumber", "chat_id", "phone_number")


def job_targets(payload: Any) -> list[str]:
    """Every chat a job payload names (``chatId``, ``phoneNumber``, their snake_case spellings,
    or the original ASPRI v2's ``context.requestedBy``), as chat ids: all are checked, so no
    spelling can slip another target past."""
    if not isinstance(payload, dict):
        return []
    context = payload.get("context")
    values = [payload.get(name) for name in TARGET_FIELDS]
    if isinstance(context, dict):
        values.append(context.get("requestedBy"))
    out = []
    for value in values:
        if value is not None:
            text = str(value).strip()
            out.append(as_chat_id(text) or text)
    return out


def targets(job: Any, chat_id: str) -> bool:
    """Whether a job (as the cron tools return it) sends to ``chat_id`` and nowhere else."""
    found = job_targets(job.get("payload") if isinstance(job, dict) else None)
    return bool(found) and all(same_person(t, chat_id) for t in found)


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
        if name == "cronjob_create" or args.get("payload") is not None:
            await self._check_job_targets(args.get("payload"))
        if name == "whatsapp_send_message" and args.get("dryRun") is True:
            await self._check_job_targets({"phoneNumber": str(args.get("phoneNumber", ""))})
        if own:
            return
        if name in OWNER_ONLY:
            raise Refused(
                f"{name} is not available in this conversation: only the owner of this "
                "assistant can list chats or search contacts."
            )
        if name in CHAT_TOOLS:
            target = as_chat_id(str(args.get("phoneNumber", "")))
            if target is None or not same_person(target, chat):
                raise Refused(
                    f"{name} may only be used for this conversation ({chat}), not for another "
                    "chat: this person is not the owner."
                )
            return
        if name == "cronjob_create":
            return  # its payload was checked above: it may only target this chat
        if name == "cronjob_list":
            return  # its result is filtered to this chat's jobs
        if name in JOB_TOOLS:
            await self._check_own_job(str(args.get("jobId", "")))
            return
        if name in MEMORY_TOOLS:
            return
        raise Refused(f"{name} is not available in this conversation.")

    def filter_jobs(self, data: Any) -> Any:
        """A ``cronjob_list`` page with only the jobs of this chat (non-owner turns)."""
        if self.principal.is_owner or not isinstance(data, dict):
            return data
        jobs = [j for j in data.get("jobs") or [] if targets(j, self.principal.chat_id)]
        return {**data, "jobs": jobs, "total": len(jobs)}

    async def _check_job_targets(self, payload: Any) -> None:
        """A payload naming no chat is for this turn's chat (the MCP server fills it in)."""
        found = job_targets(payload) or [self.principal.chat_id]
        await self.access.refresh()
        for target in found:
            if not self.principal.is_owner and not same_person(target, self.principal.chat_id):
                raise Refused(
                    "jobs created in this conversation may only send to it "
                    f"({self.principal.chat_id})."
                )
            if not self.access.may_target(target):
                raise Refused(
                    f"{target} is not an owner, an approved contact or an allowed group of "
                    "this assistant, so no job may send to it."
                )

    async def _check_own_job(self, job_id: str) -> None:
        try:
            job = await self.tools.call_data("cronjob_get", {"jobId": job_id})
        except ToolFailed:
            job = None
        if not targets(job, self.principal.chat_id):
            raise Refused(f"there is no job {job_id} in this conversation.")

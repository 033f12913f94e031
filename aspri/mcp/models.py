"""Pydantic models for the tools' structured input and output.

FastMCP derives each tool's ``inputSchema`` and ``outputSchema`` from pydantic types, so the
gateway bodies of ``aspri.schemas.api`` (msgspec) are mirrored here with descriptions for the
model; a test keeps the two in step. Output fields keep the REST API's camelCase names, so what
the model reads matches what it can pass back (a ``chatId`` from a chat list is a valid target).
Unknown fields from a newer gateway are ignored rather than failing the call.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class Out(BaseModel):
    """Base of every tool result: camelCase on the wire, lenient about extra fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# ------------------------------------------------------------------ WhatsApp


class SentMessage(Out):
    message_id: str | None = Field(
        description="WhatsApp id of the sent message; null for a dry run (nothing sent)."
    )
    chat_id: str = Field(description="Chat the message went to, e.g. 6281234567890@c.us.")
    event_id: str | None = Field(
        description="Event id of the sent message in the chat's history; null for a dry run."
    )
    parts: int = Field(
        1, description="How many WhatsApp messages the text was split into (0: a dry run)."
    )
    duplicate: bool = Field(
        False, description="True when this idempotency key was already sent: nothing new went out."
    )
    voice: bool = Field(default=False, description="True when the text went out as a voice note.")
    voice_error: str | None = Field(
        default=None, description="Why a voice note that was asked for went out as text instead."
    )


class ChatMessage(Out):
    id: str
    chat_id: str
    from_: str = Field(alias="from", description="Sender's chat id.")
    from_name: str | None = Field(None, description="Sender's WhatsApp display name, if known.")
    body: str = ""
    type: str = "chat"
    timestamp: int = Field(0, description="Unix time in milliseconds.")
    from_me: bool = Field(False, description="True for messages the assistant sent.")
    event_id: str | None = None
    entry_id: str | None = None


class MessagePage(Out):
    messages: list[ChatMessage] = Field(description="Newest first.")
    next_before: str | None = Field(
        None, description="Pass as `before` to get older messages; null when there are none."
    )


class ChatSummary(Out):
    chat_id: str = Field(description="Use as phone_number in the other WhatsApp tools.")
    name: str | None = None
    last_message: str | None = None
    last_activity: int = Field(0, description="Unix time in milliseconds of the last message.")
    message_count: int = 0


class ChatList(Out):
    chats: list[ChatSummary] = Field(description="Most recently active first.")
    more: bool = Field(description="True when there are more chats than listed; raise limit.")


class Contact(Out):
    number: str = Field(description="Phone number in international format, digits only.")
    chat_id: str = Field(description="Use as phone_number in the other WhatsApp tools.")
    name: str | None = None


class ContactList(Out):
    contacts: list[Contact]


# ------------------------------------------------------------------ cron


class JobPayload(BaseModel):
    """What a job does when it fires: send a fixed message, or have the assistant write one.

    Any other fields are kept (the original ASPRI v2's payloads carry ``action``, ``context``
    and more); a payload with no chat, called from a chat, is for that chat."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", coerce_numbers_to_str=True
    )

    chat_id: str | None = Field(
        None, description="Chat to write to, `<digits>@c.us`, e.g. 6281234567890@c.us."
    )
    phone_number: str | None = Field(
        None, description="Or a phone number in international format, e.g. +6281234567890."
    )
    message: str | None = Field(None, description="Literal text to send when the job fires.")
    prompt: str | None = Field(
        None,
        description="Or an instruction for the assistant, which writes the message when the "
        "job fires, e.g. 'Remind me to drink water, in a cheerful tone'.",
    )

    @model_validator(mode="after")
    def _one_target_one_content(self) -> JobPayload:
        if self.chat_id is not None and self.phone_number is not None:
            raise ValueError("give one of chatId or phoneNumber (the chat to write to), not both")
        if self.message is not None and self.prompt is not None:
            raise ValueError(
                "give one of message (literal text) or prompt (the assistant writes it), not both"
            )
        return self

    def targeting(self, chat_id: str | None) -> JobPayload:
        """This payload, for ``chat_id`` when it names no chat itself (and ``chat_id`` is set)."""
        context = getattr(self, "context", None)
        named = isinstance(context, dict) and context.get("requestedBy")
        if chat_id is None or self.chat_id or self.phone_number or named:
            return self
        return self.model_copy(update={"chat_id": chat_id})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Job(Out):
    job_id: str
    name: str
    status: str = Field(description="running, stopped or completed (one-shot done).")
    timezone: str = Field(description="IANA timezone the schedule is read in.")
    payload: dict[str, Any]
    created_at: str
    updated_at: str
    schedule: str | None = Field(None, description="Cron expression, for recurring jobs.")
    run_at: str | None = Field(None, description="ISO-8601 time, for one-shot jobs.")
    last_run_at: str | None = None
    next_run_at: str | None = Field(None, description="When it fires next (ISO-8601), if ever.")
    id: str = Field("", description="The same as jobId (the original ASPRI v2's name).")
    type: str = Field("recurring", description="recurring (a schedule) or one-time (runAt).")
    enabled: bool = Field(True, description="True while status is running.")
    executed: bool = Field(False, description="A one-time job that has fired.")
    executed_at: str | None = Field(None, description="When it fired, yyyyMMddHHmmss.")
    scheduled_time: str | None = Field(
        None, description="A one-time job's runAt as yyyyMMddHHmmss (the user's timezone)."
    )


class JobPage(Out):
    jobs: list[Job]
    total: int = Field(description="Jobs matching the filter; page with offset/limit.")
    offset: int
    limit: int


class Deleted(Out):
    deleted: bool = True
    job: Job = Field(description="The job as it was before it was deleted.")

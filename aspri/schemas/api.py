"""Request and response bodies of the gateways' REST APIs (the MCP server and tests use them too).

Field names are camelCase on the wire, as in the original services.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from aspri.schemas.media import Media

T = TypeVar("T")


class Body(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=False):
    """Base of every API body."""


class ErrorBody(Body):
    code: str
    message: str


class Failure(Body):
    error: ErrorBody
    success: bool = False


class Success(Body, Generic[T]):
    data: T
    success: bool = True


class ReplyError(msgspec.Struct):
    code: str = "error"
    message: str = ""


class Reply(msgspec.Struct):
    """Any gateway answer as its clients (the engine, the MCP server) read it: ``data`` left
    to the caller, an ``error`` without its fields still an error."""

    success: bool
    data: Any = None
    error: ReplyError | None = None


decode_reply = msgspec.json.Decoder(Reply).decode


# ------------------------------------------------------------------ WhatsApp gateway


class SendMessageRequest(Body):
    """``POST /api/send-message``; ``phoneNumber`` is a number (``+62 812-...``) or a chat id."""

    phone_number: str
    message: str
    idempotency_key: str | None = None
    causation_id: str | None = None
    voice: bool = False
    """Send the text as a spoken voice note (``SPEECH_PROVIDER``); as text when it cannot be."""
    reply_to: str | None = None
    """The channel's id of the message this one answers: quoted per ``REPLY_QUOTE``."""


class SentMessage(Body):
    message_id: str
    chat_id: str
    event_id: str
    parts: int = 1
    duplicate: bool = False
    message_ids: list[str] = msgspec.field(default_factory=list)
    """The channel's id of every part, in order (``messageId`` is the first)."""
    voice: bool = False
    """The text went out as one voice note."""
    voice_error: str | None = None
    """Why a voice note asked for went out as text instead."""


class ChatMessage(Body):
    """One message of a chat as the history endpoints show it."""

    id: str
    chat_id: str
    from_: str = msgspec.field(name="from")
    from_name: str | None = None
    body: str = ""
    type: str = "chat"
    timestamp: int = 0
    from_me: bool = False
    event_id: str | None = None
    entry_id: str | None = None
    media: Media | None = None
    """What the message carries besides text (a file's reference, its transcript, a location…)."""
    media_url: str | None = None
    quoted_message_id: str | None = None
    """The channel's id of the message this one quotes (a reply to it)."""
    """Where a stored file is served (``GET /api/media/{sha256}``, behind the API key)."""
    status: str | None = None
    """Of a message the assistant sent (``fromMe``): its latest delivery status, ``queued``,
    ``sent``, ``delivered``, ``read`` or ``failed`` (see ``aspri.schemas.status``)."""
    status_error: str | None = None
    """Why it ``failed`` (the channel's error code and title)."""


class StatusUpdate(Body):
    """An outbound message's latest delivery status changed (the web chat's live stream)."""

    chat_id: str
    message_id: str
    status: str
    status_error: str | None = None


class Typing(Body):
    """The assistant is working on a reply in ``chatId`` (the web chat's "typing…" line, on the
    live stream as an SSE ``typing`` event): shown until the reply arrives or ``expiresInMs``
    passes without the signal being repeated."""

    chat_id: str
    message_id: str
    expires_in_ms: int


class MessagePage(Body):
    """Newest first; pass ``nextBefore`` as ``before`` to get the page after this one."""

    messages: list[ChatMessage]
    next_before: str | None = None


class ChatSummary(Body):
    chat_id: str
    name: str | None = None
    last_message: str | None = None
    last_activity: int = 0
    message_count: int = 0
    last_inbound: int = 0
    """When the person last wrote (Unix ms; 0: never since this field was folded): the Cloud
    API's 24-hour customer-service window closes a day after it."""


class Contact(Body):
    number: str
    chat_id: str
    name: str | None = None


class LocalMessageRequest(Body):
    """``POST /api/local/messages``: a message typed into the local web chat."""

    from_: str = msgspec.field(name="from")
    text: str
    name: str | None = None


class LocalMessageAccepted(Body):
    event_id: str
    chat_id: str
    throttled: bool = False
    """Recorded, but over the sender's inbound rate limit: the assistant will not answer it."""


MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LocalAckRequest(Body):
    """``POST /api/local/acks``: the web chat page got (``delivered``) or showed in the open
    chat (``read``) these messages of the assistant."""

    chat_id: str
    message_ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=200)]
    status: Literal["delivered", "read"]


class LocalAcks(Body):
    recorded: int
    """Reports that were new (a repeat records nothing)."""
    changed: int
    """Messages whose latest status moved."""


class ModelStatus(Body):
    """Whether the assistant's model answers, as the engine workers' health records say."""

    state: str
    """``answering``, ``offline`` (every live worker finds it unreachable: commands only) or
    ``unknown`` (no engine worker is running)."""
    name: str
    since: int | None = None
    """Unix ms since when it is in this state (unknown: null)."""
    problem: str | None = None
    """Why it does not answer (offline only)."""
    workers: int = 0


class PersonAccess(Body):
    """Who a chat is to the assistant, by the owner settings and the approvals."""

    chat_id: str
    kind: str
    """``owner``, ``contact`` (approved), ``stranger``, ``group`` (allowlisted) or
    ``ignored-group``."""
    pairing_until: int | None = None
    """A stranger given a pairing code that an owner has not approved yet: when it expires."""


class AssistantState(Body):
    """``GET /api/local/assistant``: what the web chat shows about the assistant itself."""

    model: ModelStatus
    people: list[PersonAccess] = msgspec.field(default_factory=list)


class SessionQr(Body):
    """``GET /api/session/qr``: the login QR code's text while the channel waits for a scan."""

    state: str
    qr: str | None = None


class Health(Body):
    status: str
    channel: str
    engine: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)


# ------------------------------------------------------------------ cron gateway


JobType = Annotated[
    Literal["recurring", "one-time", "one-time-relative"] | None,
    msgspec.Meta(
        description="The original ASPRI v2's job type: 'recurring' (needs schedule), "
        "'one-time' (needs scheduledTime or runAt) or 'one-time-relative' (needs delayTime). "
        "Optional: the timing field given says the same."
    ),
]
ScheduledTime = Annotated[
    int | str | None,
    msgspec.Meta(
        description="The original's one-shot time: Unix milliseconds, or 'yyyyMMddHHmmss' "
        "(14 digits) read in `timezone` when given, else in the gateway's ASPRI_TIMEZONE.",
        examples=["20301221120000", 1924941600000],
    ),
]
DelayTime = (
    Annotated[
        str,
        msgspec.Meta(
            description="The original's relative one-shot: fire this long from now, "
            "'[Xh][Ym][Zs]' (hours at most 8760, minutes and seconds at most 59).",
            examples=["2m", "2h3m4s"],
            pattern=r"^(?:\d{1,4}h)?(?:[0-5]?\dm)?(?:[0-5]?\ds)?$",
        ),
    ]
    | None
)
Enabled = Annotated[
    bool | None,
    msgspec.Meta(description="The original's switch: true is status running, false stopped."),
]


class JobCreate(Body):
    """``POST /api/jobs``: exactly one of ``schedule`` (cron), ``runAt`` (ISO-8601), or the
    original ASPRI v2's ``scheduledTime`` / ``delayTime`` (with its ``type`` and ``enabled``).
    """

    name: str
    schedule: str | None = None
    run_at: str | None = None
    timezone: str | None = None
    """IANA name; default UTC."""
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    job_id: str | None = None
    status: str = "running"
    type: JobType = None
    scheduled_time: ScheduledTime = None
    delay_time: DelayTime = None
    enabled: Enabled = None


class JobUpdate(Body):
    """``PATCH /api/jobs/{jobId}``: only the fields given change (``enabled`` starts or stops
    the job; ``type`` cannot change)."""

    name: str | None = None
    schedule: str | None = None
    run_at: str | None = None
    timezone: str | None = None
    payload: dict[str, Any] | None = None
    type: JobType = None
    scheduled_time: ScheduledTime = None
    delay_time: DelayTime = None
    enabled: Enabled = None


class Job(Body):
    """A job; ``id`` to ``executedAt`` are the original ASPRI v2's fields (its times are
    ``yyyyMMddHHmmss`` in the gateway's ASPRI_TIMEZONE)."""

    job_id: str
    name: str
    status: str
    timezone: str
    payload: dict[str, Any]
    created_at: str
    updated_at: str
    schedule: str | None = None
    run_at: str | None = None
    last_run_at: str | None = None
    next_run_at: str | None = None
    problem: str | None = None
    """Why the scheduler cannot plan this job's definition (it never fires); null when fine."""
    id: str = ""
    """The same as ``jobId``."""
    type: str = "recurring"
    """``recurring`` (a schedule) or ``one-time`` (runAt)."""
    enabled: bool = True
    """``status`` is running."""
    executed: bool = False
    """A one-time job that has fired."""
    executed_at: str | None = None
    scheduled_time: str | None = None
    """A one-time job's runAt as ``yyyyMMddHHmmss``."""


class StartedJob(Job):
    """``POST .../start``: the job, and the original's ``started``."""

    started: bool = True


class StoppedJob(Job):
    """``POST .../stop``: the job, and the original's ``stopped``."""

    stopped: bool = True


class DeletedJob(Job):
    """``DELETE``: the job as it was, and the original's ``deleted``."""

    deleted: bool = True


class JobStats(Body):
    """``GET /api/jobs/stats``, as the original counted."""

    total: int
    recurring: int
    one_time: int
    active: int
    """Jobs whose status is running (the original's enabled)."""
    executed: int
    """One-time jobs that have fired."""


class JobPage(Body):
    jobs: list[Job]
    total: int
    offset: int
    limit: int

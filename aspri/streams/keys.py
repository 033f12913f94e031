"""Every Redis key name ASPRI uses, in one place (DESIGN.md §3)."""

from __future__ import annotations

WHATSAPP_MESSAGES = "whatsapp:messages"
"""Inbound messages; the engine's work queue."""

CRON_EVENTS = "cronjob:events"
"""Job triggers; the engine's work queue."""

CRON_JOBS = "cronjob:jobs"
"""The job registry's log: created/updated/deleted/started/stopped/fired."""

ACCESS = "access:events"
"""Who the assistant obeys besides the owners: approvals, revocations, groups, pairing codes."""

IDENTITY = "identity:events"
"""Which id forms name one person (an ``@lid`` id and the phone's ``@c.us`` id)."""

ENGINE_GROUP = "ai-engine"


def chat(chat_id: str) -> str:
    """The conversation log of one chat: messages in and out, turns, resets."""
    return f"chat:{chat_id}"


def memory(person: str) -> str:
    """One person's long-term memory: facts saved and forgotten, session summaries."""
    return f"memory:{person}"


def dlq(stream: str) -> str:
    """Where events that failed too often, or could not be decoded, end up."""
    return f"{stream}:dlq"


def idempotency(key: str) -> str:
    """Remembers the entry ids of an append made with this idempotency key."""
    return f"idem:{key}"


def snapshot(table: str) -> str:
    """A table's snapshot: its state and the stream id it covers."""
    return f"snapshot:{table}"


def key_queue(stream: str, group: str, key: str) -> str:
    """Entry ids of one event key in stream order, not yet finished by ``group``."""
    return f"keyq:{group}:{stream}:{key}"


def lease(stream: str, group: str, key: str) -> str:
    """The lease on one event key: which consumer works on it, with its fencing token."""
    return f"lease:{group}:{stream}:{key}"


def lease_counter(stream: str, group: str) -> str:
    """Monotonic fencing tokens for the leases of one stream and group."""
    return f"lease:{group}:{stream}:#"


def wake_channel(stream: str, group: str) -> str:
    """Pub/sub channel announcing the entry id that now heads its key's queue."""
    return f"wake:{group}:{stream}"


CRON_LEASE = "cronjob:scheduler:lease"
"""Which scheduler process may fire jobs (a token with a TTL its holder keeps renewing)."""


WHATSAPP_CHATS = "whatsapp:chats"
"""Hash chatId → chat summary JSON: a projection of the chat streams (WhatsApp gateway)."""

WHATSAPP_CHAT_CURSORS = "whatsapp:chats:cursor"
"""Hash chatId → id of the last chat-stream entry folded into ``WHATSAPP_CHATS``."""

WHATSAPP_CONTACTS = "whatsapp:contacts"
"""Hash contact chat id → contact JSON (number, push name): a projection, for search."""

WHATSAPP_MEDIA_PENDING = "whatsapp:media:pending"
"""Stream of admitted inbound media messages whose files are still to be fetched (the Cloud
API webhook answers first; the gateway's worker downloads, then records them)."""

WHATSAPP_MEDIA_GROUP = "gateway"
"""The WhatsApp gateway's consumer group on ``WHATSAPP_MEDIA_PENDING``."""


def whatsapp_send(key: str) -> str:
    """Hash of one idempotent send: request fingerprint, the parts sent so far, the result."""
    return f"whatsapp:send:{key}"


def whatsapp_send_lock(key: str) -> str:
    """Held while a send with this idempotency key is in progress (any gateway process)."""
    return f"whatsapp:send:{key}:lock"


def whatsapp_statuses(chat_id: str) -> str:
    """Hash message id → the latest delivery status of the chat's outbound messages: the fold
    of its ``whatsapp:status`` events, updated in the same step that appends each one."""
    return f"whatsapp:status:{chat_id}"


def login_used(nonce: str) -> str:
    """Set (until the link expires) once a one-time web-chat login link has been used."""
    return f"whatsapp:login:used:{nonce}"


CRON_HANDOVER = "cronjob:scheduler:handover"
"""Pushed to when a scheduler gives its lease up, so a waiting one takes over at once."""


def health(service: str, name: str) -> str:
    """One running instance's health record (JSON, with a TTL it renews while it works)."""
    return f"aspri:health:{service}:{name}"


def health_index(service: str) -> str:
    """Every instance of ``service`` seen lately, scored by its last record (Unix ms)."""
    return f"aspri:health:{service}"


def inbound_limit(sender: str) -> str:
    """One sender's inbound rate limiter state (WhatsApp gateway; expires when idle)."""
    return f"whatsapp:limit:{sender}"


def working_channel(db: int) -> str:
    """Pub/sub channel on which engine workers tell the WhatsApp gateway which chat a turn is
    working on (typing indicator, read receipt). Named by database: pub/sub is server-wide,
    and two deployments sharing a server must not see each other's signals."""
    return f"whatsapp:working:{db}"

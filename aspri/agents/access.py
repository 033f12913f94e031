"""Who the assistant obeys: owners, allowed contacts, allowlisted groups, and pairing.

The owners come from the settings (``OWNER_NUMBERS``); everyone else is decided by the fold of
``access:events`` (approvals, revocations, groups, pairing codes), which every engine worker
keeps and brings up to date before each decision, so all workers agree and a restart loses
nothing. Writers that decide on the state (a new pairing code) append with
``expected_last_id`` and decide again when another worker wrote first. Every rule reads a
sender as the person (``aspri.identity``): an ``@lid`` linked to an owner's phone is that owner,
one nobody linked is judged on its own — a stranger unless approved under that id.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aspri.config import Settings
from aspri.identity import Identities, phone_id
from aspri.schemas import REGISTRY, Event, Payload, chatid
from aspri.schemas.access import (
    AccountLinked,
    ContactAllowed,
    ContactRevoked,
    GroupAllowed,
    GroupRevoked,
    PairingRequested,
)
from aspri.streams import keys
from aspri.streams.log import AppendConflict, EventLog
from aspri.streams.table import Table

log = logging.getLogger(__name__)

Kind = Literal["owner", "contact", "stranger"]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""No 0/O or 1/I: a code is read off one screen and typed on another."""
CODE_LENGTH = 8
CODE_TTL_MS = 3_600_000
MAX_PENDING = 3
"""Unexpired pairing codes at once; past that, strangers get no notice until one expires."""


@dataclass
class AccessState:
    """The fold of ``access:events``."""

    contacts: dict[str, str] = field(default_factory=dict)
    """Allowed contact (``person`` of the chat id) → how (``pair`` or ``allow``)."""
    groups: dict[str, str] = field(default_factory=dict)
    """Allowlisted group chat id → who allowed it."""
    codes: dict[str, PairingRequested] = field(default_factory=dict)
    """Pairing codes not used yet (expired ones are dropped as time moves on)."""
    used: dict[str, str] = field(default_factory=dict)
    """Pairing codes already approved → the chat they admitted (a replayed ``/pair``)."""
    linked: str | None = None
    """The browser engine's own account (an owner)."""


def apply(state: AccessState, event: Event[Any]) -> None:
    data = event.data
    if isinstance(data, ContactAllowed):
        state.contacts[person(data.chat_id)] = "pair" if data.code else "allow"
        if data.code:
            state.used[data.code] = data.chat_id
        state.codes = {c: p for c, p in state.codes.items() if p.chat_id != data.chat_id}
    elif isinstance(data, ContactRevoked):
        state.contacts.pop(person(data.chat_id), None)
    elif isinstance(data, GroupAllowed):
        state.groups[data.chat_id] = data.by
    elif isinstance(data, GroupRevoked):
        state.groups.pop(data.chat_id, None)
    elif isinstance(data, AccountLinked):
        state.linked = data.chat_id
    elif isinstance(data, PairingRequested):
        state.codes = {c: p for c, p in state.codes.items() if p.expires_at > event.timestamp}
        state.codes[data.code] = data


@dataclass(frozen=True, slots=True)
class Principal:
    """On whose behalf a turn runs, and the chat it may act in.

    An owner's turn may act everywhere; a contact's turn (an allowed person, an allowlisted
    group, a cron job that targets one of them) only on ``chat_id``.
    """

    kind: Kind
    chat_id: str
    sender: str

    @property
    def is_owner(self) -> bool:
        return self.kind == "owner"


def person(chat_id: str) -> str:
    """One key per person: ``…@s.whatsapp.net`` and ``…@c.us`` of one number are the same
    (an ``@lid`` needs the identity links: ``Access`` resolves senders through them)."""
    return phone_id(chat_id)


def same_person(a: str, b: str) -> bool:
    """Whether two chat ids name one person."""
    return person(a) == person(b)


def as_chat_id(target: str) -> str | None:
    """A payload's or a tool's target as a chat id, or None when it is neither."""
    try:
        return chatid.normalize(target)
    except chatid.InvalidChatId:
        return None


class Access:
    """The access rules of one engine worker, over the fold of ``access:events``."""

    def __init__(
        self, settings: Settings, log_: EventLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.log = log_
        self.clock = clock
        self.table: Table[AccessState] = Table(
            log_, keys.ACCESS, initial=AccessState, apply=apply, name="access"
        )
        self.identities = Identities(log_)
        self._owners = frozenset(person(o) for o in settings.owner_numbers)
        self.trusted = settings.whatsapp_engine == "local" and not settings.owner_numbers
        """The local web chat without OWNER_NUMBERS: its page is behind the API key, so
        everyone who types in it is the owner."""
        name = re.escape(settings.assistant_name.strip())
        self._addressed = re.compile(rf"(?<![\w@])@?{name}(?!\w)", re.IGNORECASE) if name else None

    @property
    def state(self) -> AccessState:
        return self.table.state

    async def start(self) -> None:
        await self.table.start()
        await self.identities.start()

    async def stop(self) -> None:
        await self.identities.stop()
        await self.table.stop()

    async def refresh(self) -> None:
        """Apply what other workers (or this one) appended: decisions use the latest rules."""
        await self.table.catch_up()
        await self.identities.refresh()

    # ------------------------------------------------------------------ the rules

    def is_owner(self, sender: str) -> bool:
        who = self.identities.person(sender)
        if self.trusted or who in self._owners:
            return True
        linked = self.state.linked if self.settings.whatsapp_engine == "browser" else None
        return linked is not None and same_person(who, self.identities.person(linked))

    async def link(self, chat_id: str, cause: str) -> None:
        """Remember the browser engine's own account (seen writing in its own chat)."""
        if self.settings.whatsapp_engine == "browser" and self.state.linked != chat_id:
            await self._append(AccountLinked(chat_id=chat_id), f"access:linked:{cause}")

    def kind(self, sender: str) -> Kind:
        """What a person is, by the settings (owners, ``DM_POLICY``) and the approvals."""
        if self.is_owner(sender):
            return "owner"
        policy = self.settings.dm_policy
        if policy == "open":
            return "contact"
        if policy != "disabled" and self.identities.person(sender) in self.state.contacts:
            return "contact"
        return "stranger"

    def group_allowed(self, chat_id: str) -> bool:
        return (
            self.trusted or chat_id in self.settings.allowed_groups or chat_id in self.state.groups
        )

    def may_target(self, chat_id: str) -> bool:
        """Whether a job may send to this chat: an owner, an allowed contact or an allowlisted
        group, never a stranger."""
        if chatid.is_group(chat_id):
            return self.group_allowed(chat_id)
        return self.kind(chat_id) != "stranger"

    def principal_for(self, chat_id: str) -> Principal | None:
        """The principal of a turn in ``chat_id`` that no person started (a cron prompt)."""
        if not self.may_target(chat_id):
            return None
        if not chatid.is_group(chat_id) and self.kind(chat_id) == "owner":
            return Principal("owner", chat_id, chat_id)
        return Principal("contact", chat_id, chat_id)

    def addressed(self, body: str) -> bool:
        """Whether a group message speaks to the assistant: its name, ``@name``, or (browser
        engine) a WhatsApp mention of the linked account, which puts ``@<number>`` in the text."""
        if self._addressed and self._addressed.search(body):
            return True
        linked = self.state.linked
        return linked is not None and f"@{chatid.number(linked)}" in body

    # ------------------------------------------------------------------ pairing

    def pending(self) -> list[PairingRequested]:
        now = self.clock() * 1000
        return [p for p in self.state.codes.values() if p.expires_at > now]

    async def request_pairing(self, chat_id: str, cause: str, name: str | None) -> str | None:
        """The code to tell the stranger of message ``cause``, or None when they get nothing
        (a code of theirs is still pending, or too many codes are pending)."""
        for _ in range(10):
            await self.refresh()
            pending = self.pending()
            mine = next((p for p in pending if p.chat_id == chat_id), None)
            if mine is not None:
                return mine.code if mine.cause == cause else None  # a replayed message: resend
            if len(pending) >= MAX_PENDING:
                return None
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            expires = int(self.clock() * 1000) + CODE_TTL_MS
            request = PairingRequested(
                chat_id=chat_id, code=code, cause=cause, expires_at=expires, name=name
            )
            try:
                appended = await self._append(
                    request, f"access:pairing:{cause}", expected=self.table.last_id
                )
            except AppendConflict:
                continue  # another worker wrote meanwhile: decide again on the new state
            if appended.duplicate:
                continue  # written before a crash: the fold now has it, with this cause
            return code
        return None

    async def pair(self, code: str, by: str, key: str) -> str | None:
        """Admit the stranger holding ``code``; their chat id, or None for an unknown code."""
        await self.refresh()
        wanted = code.strip().upper()
        request = next((p for p in self.pending() if p.code == wanted), None)
        if request is None:
            return self.state.used.get(wanted)
        await self._append(ContactAllowed(chat_id=request.chat_id, by=by, code=wanted), key)
        return request.chat_id

    async def allow(self, chat_id: str, by: str, key: str) -> None:
        await self._append(ContactAllowed(chat_id=chat_id, by=by), key)

    async def revoke(self, chat_id: str, by: str, key: str) -> None:
        await self._append(ContactRevoked(chat_id=chat_id, by=by), key)

    async def allow_group(self, chat_id: str, by: str, key: str) -> None:
        await self._append(GroupAllowed(chat_id=chat_id, by=by), key)

    async def revoke_group(self, chat_id: str, by: str, key: str) -> None:
        await self._append(GroupRevoked(chat_id=chat_id, by=by), key)

    async def _append(self, payload: Payload, key: str, *, expected: str | None = None) -> Any:
        event = REGISTRY.event(payload, source="engine")
        appended = await self.log.append(
            keys.ACCESS, event, idempotency_key=key, expected_last_id=expected
        )
        await self.table.wait_for(appended.id)
        log.info("access changed", extra={"type": event.type, "duplicate": appended.duplicate})
        return appended

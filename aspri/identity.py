"""One person, whatever id form a channel gives: the fold of ``identity:events``.

A person's id is their phone's chat id (``<digits>@c.us``); ``@s.whatsapp.net`` is the same
number, and an ``@lid`` id is theirs once a link (``identity:linked``) says so. An ``@lid``
nobody linked stays its own person — for the owner rules a stranger, never mistaken for the
owner. The gateway resolves ids before it records a message, so chats, sessions, jobs and
memory are keyed by the person; the engine's access rules resolve again, so a link recorded
after a message still counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aspri.schemas import REGISTRY, Event, chatid
from aspri.schemas.identity import IdentityLinked
from aspri.streams import keys
from aspri.streams.log import EventLog
from aspri.streams.table import Table

log = logging.getLogger(__name__)


@dataclass
class IdentityState:
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias id (``…@lid``) → the person's id (``…@c.us``)."""


def apply(state: IdentityState, event: Event[Any]) -> None:
    data = event.data
    if isinstance(data, IdentityLinked):
        state.aliases[data.alias] = data.person


def phone_id(chat_id: str) -> str:
    """``…@s.whatsapp.net`` → ``…@c.us`` (one number); any other id as it is."""
    if chat_id.endswith("@s.whatsapp.net"):
        return f"{chatid.number(chat_id)}@c.us"
    return chat_id


class Identities:
    """The identity fold of one process; ``person`` answers from memory."""

    def __init__(self, log_: EventLog) -> None:
        self.log = log_
        self.table: Table[IdentityState] = Table(
            log_, keys.IDENTITY, initial=IdentityState, apply=apply, name="identity"
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    async def refresh(self) -> None:
        await self.table.catch_up()

    def person(self, chat_id: str) -> str:
        """The person's id for any id form (unknown aliases and groups as they are)."""
        chat_id = phone_id(chat_id)
        return self.table.state.aliases.get(chat_id, chat_id)

    async def link(self, alias: str, person: str, source: str) -> None:
        """Record that ``alias`` is ``person`` (once: a known link is not written again)."""
        person = phone_id(person)
        if alias == person or self.table.state.aliases.get(alias) == person:
            return
        event = REGISTRY.event(
            IdentityLinked(alias=alias, person=person, source=source), source="whatsapp"
        )
        appended = await self.log.append(
            keys.IDENTITY, event, idempotency_key=f"identity:link:{alias}:{person}"
        )
        await self.table.wait_for(appended.id)
        log.info("identity linked", extra={"alias": alias, "source": source})

"""The access rules on their own: policies, owners in any notation, groups, addressing, and
pairing codes (one per stranger, a few pending, an hour each), on a real Valkey."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis.asyncio import Redis

from aspri.agents.access import CODE_TTL_MS, MAX_PENDING, Access, same_person
from aspri.config import Settings
from aspri.identity import Identities
from aspri.streams import EventLog

OWNER = "6281111111111@c.us"
GROUP = "120363000000000001@g.us"


def access(redis: Redis, clock: list[float] | None = None, **overrides: object) -> Access:
    settings = replace(Settings(owner_numbers=(OWNER,)), **overrides)
    now = clock or [1_800_000_000.0]
    return Access(settings, EventLog(redis), lambda: now[0])


def test_one_person_across_id_forms() -> None:
    assert same_person("6281111111111@c.us", "6281111111111@s.whatsapp.net")
    assert not same_person("6281111111111@c.us", "6281111111112@c.us")
    assert not same_person(GROUP, "120363000000000001@c.us")


@pytest.mark.parametrize(
    ("policy", "approved", "unknown"),
    [
        ("pairing", "contact", "stranger"),
        ("allowlist", "contact", "stranger"),
        ("open", "contact", "contact"),
        ("disabled", "stranger", "stranger"),
    ],
)
async def test_each_dm_policy(redis: Redis, policy: str, approved: str, unknown: str) -> None:
    rules = access(redis, dm_policy=policy)
    await rules.allow("6282222222222@c.us", OWNER, "k1")
    assert rules.kind("6281111111111@s.whatsapp.net") == "owner"
    assert rules.kind("6282222222222@c.us") == approved
    assert rules.kind("6283333333333@c.us") == unknown


async def test_the_local_web_chat_trusts_everyone_only_without_owners(redis: Redis) -> None:
    assert access(redis, owner_numbers=()).kind("6283333333333@c.us") == "owner"
    assert access(redis, owner_numbers=()).group_allowed(GROUP)
    assert access(redis).kind("6283333333333@c.us") == "stranger"
    cloud = access(redis, owner_numbers=(), whatsapp_engine="cloud")
    assert cloud.kind("6283333333333@c.us") == "stranger"


async def test_groups_and_addressing(redis: Redis) -> None:
    rules = access(redis, allowed_groups=(GROUP,), assistant_name="Aspri")
    other = "120363000000000002@g.us"
    assert rules.group_allowed(GROUP) and not rules.group_allowed(other)
    await rules.allow_group(other, OWNER, "g1")
    assert rules.may_target(other)
    await rules.revoke_group(other, OWNER, "g2")
    assert not rules.may_target(other)
    for text in ("ASPRI, what time is it", "hey @aspri!", "thanks aspri"):
        assert rules.addressed(text), text
    for text in ("asprin please", "mail x@aspri.com", "nothing here"):
        assert not rules.addressed(text), text


async def test_pairing_codes(redis: Redis) -> None:
    clock = [1_800_000_000.0]
    rules = access(redis, clock)
    first = await rules.request_pairing("6284000000000@c.us", "cause-1", "Budi")
    assert first is not None and len(first) == 8
    assert await rules.request_pairing("6284000000000@c.us", "cause-1", "Budi") == first
    assert await rules.request_pairing("6284000000000@c.us", "cause-2", "Budi") is None
    for i in range(1, MAX_PENDING):
        assert await rules.request_pairing(f"628400000000{i}@c.us", f"c{i}", None)
    assert await rules.request_pairing("6284000000009@c.us", "c9", None) is None

    other = access(redis, clock)  # a second worker, from the stream alone
    await other.refresh()
    assert await other.pair(first.lower(), OWNER, "pair-1") == "6284000000000@c.us"
    await rules.refresh()
    assert rules.kind("6284000000000@c.us") == "contact"
    assert await rules.pair(first, OWNER, "pair-1") == "6284000000000@c.us"  # a replay
    assert await rules.pair("NOSUCH23", OWNER, "pair-2") is None

    clock[0] += CODE_TTL_MS / 1000 + 1
    assert rules.pending() == []
    renewed = await rules.request_pairing("6284000000001@c.us", "c1-later", None)
    assert renewed is not None and renewed != first
    await rules.revoke("6284000000000@c.us", OWNER, "r1")
    assert rules.kind("6284000000000@c.us") == "stranger"


async def test_an_lid_is_judged_as_the_person_it_is_linked_to(redis: Redis) -> None:
    """The owner writing from a hidden linked id (``@lid``) is still the owner once the link is
    recorded (by the gateway, from wa-js); an ``@lid`` nobody linked is a stranger — also on
    the browser engine, whose linked account is an owner."""
    log = EventLog(redis)
    owner_lid, contact_lid, hidden = "111111111111111@lid", "222222222222222@lid", "333@lid"
    rules = access(redis, whatsapp_engine="browser")
    await rules.start()
    try:
        await rules.link(OWNER, "config-check")  # the linked account is the owner's own
        await rules.allow("6282222222222@c.us", OWNER, "k1")
        assert rules.kind(owner_lid) == rules.kind(contact_lid) == "stranger"

        writer = Identities(log)
        await writer.start()
        await writer.link(owner_lid, OWNER, "browser")
        await writer.link(contact_lid, "6282222222222@s.whatsapp.net", "browser")
        await writer.stop()
        await rules.refresh()
        assert rules.kind(owner_lid) == "owner" and rules.is_owner(owner_lid)
        assert rules.kind(contact_lid) == "contact"
        assert rules.kind(hidden) == "stranger" and not rules.is_owner(hidden)
        assert not rules.may_target(hidden)
    finally:
        await rules.stop()

"""The checker itself: each anomaly it exists for is reported, and a clean history is valid."""

from __future__ import annotations

from redis.asyncio import Redis

from aspri.schemas import REGISTRY
from aspri.schemas.chat import ChatCoalesced, ChatTurn
from aspri.schemas.events import WhatsAppMessage
from aspri.streams import keys
from aspri.streams.log import EventLog
from tests.chaos.checker import (
    Accepted,
    Observed,
    Reply,
    check,
    observe,
    percentile,
    recovery_ms,
)


def history() -> tuple[list[Accepted], Observed]:
    accepted = [Accepted(f"e{i}", "c1@c.us", i) for i in range(4)]
    observed = Observed(
        replies=[
            Reply("c1@c.us", "100-0", "e0", ("e0",)),
            Reply("c1@c.us", "200-0", "e2", ("e1", "e2")),  # one turn answered two messages
            Reply("c1@c.us", "300-0", "e3", ("e3",)),
        ],
        inbound_ms={"e0": 50, "e1": 60, "e2": 70, "e3": 80},
    )
    return accepted, observed


def test_a_clean_history_is_valid() -> None:
    accepted, observed = history()
    verdict = check(accepted, observed)
    assert verdict.valid and verdict.answered == 4, verdict


def test_lost_duplicated_unexpected_and_recovered() -> None:
    accepted, observed = history()
    observed.replies[2] = Reply("c1@c.us", "300-0", "e2", ("e2",))  # e3 never, e2 twice
    observed.replies.append(Reply("c1@c.us", "400-0", "x1", ("x1",)))
    observed.replies.append(Reply("c1@c.us", "500-0", "x2", ("x2",)))
    verdict = check(accepted, observed, indeterminate=["x2"])
    assert verdict.lost == ["e3"]
    assert verdict.duplicated == {"e2": 2}
    assert verdict.unexpected == ["x1"]
    assert verdict.recovered == ["x2"]
    assert not verdict.valid


def test_out_of_order_within_a_chat() -> None:
    accepted, observed = history()
    observed.replies[0], observed.replies[2] = observed.replies[2], observed.replies[0]
    verdict = check(accepted, observed)
    assert ("e0", "e3") in verdict.out_of_order  # e3 was answered before e0
    assert not verdict.valid


def test_apologies_are_answers_but_counted() -> None:
    accepted, observed = history()
    observed.replies[2] = Reply("c1@c.us", "300-0", "e3", ("e3",), failed=True)
    verdict = check(accepted, observed)
    assert verdict.valid and verdict.failed == ["e3"]


def test_recovery_is_time_until_everything_before_the_kill_was_answered() -> None:
    accepted, observed = history()
    assert recovery_ms([75], accepted, observed) == [
        125.0
    ]  # e0..e2 logged before it; e2 answered at 200
    assert percentile([1, 2, 3, 4, 100], 99) == 100 and percentile([], 50) == 0


async def test_a_coalesced_backlog_is_handled_not_lost(redis: Redis) -> None:
    """Real Valkey: m0 and m1 waited beyond the prompt window. The ``chat:coalesced`` record,
    written while handling m1 (a redelivery, say), names m0 and covers m1 through ``through``;
    the next reply, caused by m3, answered m2 and m3. m0 and m1 are coalesced, not lost, and
    a reply that answered m0 as well is no duplicate; m4 after it all is lost."""
    chat = "15550009999@c.us"
    log = EventLog(redis)

    async def inbound(i: int) -> tuple[str, str]:
        message = WhatsAppMessage(id=f"w{i}", chat_id=chat, from_=chat, body=f"m{i}")
        event = REGISTRY.event(message, source="whatsapp")
        return event.event_id, (await log.append(keys.chat(chat), event)).id

    m = [await inbound(i) for i in range(4)]
    cause = m[3][0]
    coalesced = ChatCoalesced(
        chat_id=chat, cause=m[1][0], messages=[m[0][0]], through=m[1][1], reason="window"
    )
    await log.append(keys.chat(chat), REGISTRY.event(coalesced, source="engine"))
    reply = WhatsAppMessage(id="r", chat_id=chat, from_=chat, body="re", from_me=True)
    await log.append(keys.chat(chat), REGISTRY.event(reply, source="engine", causation_id=cause))
    turn = ChatTurn(chat_id=chat, cause=cause, answered=[m[0][0], m[2][0], m[3][0]])
    await log.append(keys.chat(chat), REGISTRY.event(turn, source="engine"))
    late = await inbound(4)

    observed = await observe(redis, [chat])
    accepted = [Accepted(e, chat, i) for i, (e, _) in enumerate([*m, late])]
    verdict = check(accepted, observed)
    assert verdict.lost == [late[0]], verdict
    assert verdict.coalesced == [m[1][0]] and verdict.answered == 3, verdict
    assert not verdict.duplicated and not verdict.out_of_order
    assert {e for e, _ in m} <= observed.handled() and late[0] not in observed.handled()

"""A total-queue checker in the style of Jepsen's: what was accepted against what was answered.

Every inbound message the gateway acknowledged with 202 was *enqueued*; every reply the engine
sent is a *dequeue* of the messages it answers (the reply names its cause with ``causationId``;
the cause's ``chat:turn`` lists every message that turn answered, since quick free-text messages
share one turn). The checker reads nothing but the log, so it sees exactly what a person would.

- **lost**: accepted, never answered;
- **duplicated**: answered by more than one reply;
- **unexpected**: answered but never accepted (nor attempted with an unknown outcome);
- **recovered**: attempted with an unknown outcome (timeout, 5xx) and answered — fine;
- **out of order**: within one chat, a message answered before one accepted earlier;
- **failed**: answered only by the apology (the model was down at the last delivery);
- **coalesced**: not answered by a reply of its own but named by a ``chat:coalesced`` record
  (older than the prompt window when a backlog built up; the next reply stands for it) — not
  lost, and not counted as a duplicate when a reply answered it too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from aspri.schemas.chat import ChatCoalesced, ChatTurn
from aspri.streams import ids, keys
from aspri.streams.log import EventLog


@dataclass(frozen=True)
class Accepted:
    """A message the gateway took (202): its eventId, chat and place in the chat's order."""

    event_id: str
    chat_id: str
    seq: int


@dataclass(frozen=True)
class Reply:
    """One reply in ``chat:{chatId}``, with the inbound eventIds it answers."""

    chat_id: str
    entry_id: str
    cause: str | None
    answers: tuple[str, ...]
    failed: bool = False


@dataclass
class Observed:
    """What the chat streams hold: every reply, and when each inbound message was logged."""

    replies: list[Reply] = field(default_factory=list)
    inbound_ms: dict[str, int] = field(default_factory=dict)
    inbound_text: dict[str, str] = field(default_factory=dict)
    coalesced: dict[str, int] = field(default_factory=dict)
    """Messages a ``chat:coalesced`` record stands for, and when it was logged (ms)."""

    def event_ids_of(self, texts: Iterable[str]) -> list[str]:
        """The eventIds of the inbound messages with these texts (unknown-outcome sends)."""
        wanted = set(texts)
        return [e for e, body in self.inbound_text.items() if body in wanted]

    def handled(self) -> set[str]:
        """Every message answered by a reply or coalesced with a record."""
        return self.answered_ms().keys() | self.coalesced.keys()

    def answered_ms(self) -> dict[str, int]:
        """When each message was first answered (the reply's stream time, in ms)."""
        out: dict[str, int] = {}
        for r in self.replies:
            for a in r.answers:
                out.setdefault(a, ids.parse(r.entry_id)[0])
        return out


@dataclass
class Verdict:
    accepted: int
    answered: int
    lost: list[str]
    duplicated: dict[str, int]
    unexpected: list[str]
    recovered: list[str]
    out_of_order: list[tuple[str, str]]
    failed: list[str]
    coalesced: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.out_of_order)

    def summary(self) -> str:
        return (
            f"accepted={self.accepted} answered={self.answered} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} unexpected={len(self.unexpected)} "
            f"recovered={len(self.recovered)} out_of_order={len(self.out_of_order)} "
            f"failed={len(self.failed)} coalesced={len(self.coalesced)}"
        )


def check(
    accepted: Sequence[Accepted], observed: Observed, indeterminate: Iterable[str] = ()
) -> Verdict:
    """Compare the accepted messages with the replies (see the module docstring)."""
    maybe = set(indeterminate)
    taken = {a.event_id for a in accepted}
    counts: Counter[str] = Counter()
    position: dict[str, int] = {}
    failed: set[str] = set()
    for index, reply in enumerate(observed.replies):
        for answered in reply.answers:
            counts[answered] += 1
            position.setdefault(answered, index)
            if reply.failed:
                failed.add(answered)
    by_chat: dict[str, list[Accepted]] = defaultdict(list)
    for a in accepted:
        by_chat[a.chat_id].append(a)
    out_of_order: list[tuple[str, str]] = []
    for messages in by_chat.values():
        latest: Accepted | None = None
        for a in sorted(messages, key=lambda m: m.seq):
            if a.event_id not in position:
                continue
            if latest is not None and position[a.event_id] < position[latest.event_id]:
                out_of_order.append((latest.event_id, a.event_id))
            if latest is None or position[a.event_id] >= position[latest.event_id]:
                latest = a
    return Verdict(
        accepted=len(taken),
        answered=len(taken & counts.keys()),
        lost=sorted(taken - counts.keys() - observed.coalesced.keys()),
        duplicated={e: n for e, n in counts.items() if n > 1},
        unexpected=sorted(counts.keys() - taken - maybe),
        recovered=sorted((counts.keys() & maybe) - taken),
        out_of_order=out_of_order,
        failed=sorted(failed & taken),
        coalesced=sorted((taken & observed.coalesced.keys()) - counts.keys()),
    )


async def observe(redis: Redis, chat_ids: Iterable[str]) -> Observed:
    """Read every chat stream once: replies (``fromMe`` with a ``causationId``) and what their
    turns answered. A reply whose turn is not recorded yet answers its cause alone."""
    log = EventLog(redis)
    observed = Observed()
    for chat_id in sorted(set(chat_ids)):
        events = await log.read(keys.chat(chat_id))
        turns: dict[str, ChatTurn] = {
            e.data.cause: e.data for e in events if isinstance(e.data, ChatTurn)
        }
        inbound = [
            e
            for e in events
            if e.type == "whatsapp:message" and e.entry_id is not None and not e.data.from_me
        ]
        for record_ms, covered in _coalesced(events, inbound, turns):
            for message in covered:
                observed.coalesced.setdefault(message, record_ms)
        for e in events:
            if e.type != "whatsapp:message" or e.entry_id is None:
                continue
            if not e.data.from_me:
                observed.inbound_ms[e.event_id] = ids.parse(e.entry_id)[0]
                observed.inbound_text[e.event_id] = e.data.body
                continue
            cause = e.causation_id
            turn = turns.get(cause) if cause else None
            answers = tuple(turn.answered) if turn and turn.answered else (cause,) if cause else ()
            observed.replies.append(
                Reply(
                    chat_id, e.entry_id, cause, answers, failed=bool(turn and turn.kind == "failed")
                )
            )
    observed.replies.sort(key=lambda r: (r.chat_id, ids.parse(r.entry_id)))
    return observed


def _coalesced(
    events: Sequence[Any], inbound: Sequence[Any], turns: dict[str, ChatTurn]
) -> list[tuple[int, list[str]]]:
    """Per ``chat:coalesced`` record (its time in ms), the messages it stands for: those it
    names, and any inbound message up to its ``through`` that no turn answered by itself."""
    by_turns = {m for t in turns.values() for m in t.answered} | turns.keys()
    out: list[tuple[int, list[str]]] = []
    for e in events:
        if not isinstance(e.data, ChatCoalesced):
            continue
        through = ids.parse(e.data.through)
        named = set(e.data.messages)
        beyond = [
            m.event_id
            for m in inbound
            if ids.parse(m.entry_id) <= through
            and m.event_id not in by_turns
            and m.event_id not in named
        ]
        out.append((ids.parse(e.entry_id)[0], [*e.data.messages, *beyond]))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latencies_ms(accepted: Sequence[Accepted], observed: Observed) -> list[float]:
    """Accepted → first answer, per message, from the stream clock."""
    answered = observed.answered_ms()
    return [
        float(answered[a.event_id] - observed.inbound_ms[a.event_id])
        for a in accepted
        if a.event_id in answered and a.event_id in observed.inbound_ms
    ]


def recovery_ms(
    kills_ms: Sequence[int], accepted: Sequence[Accepted], observed: Observed
) -> list[float]:
    """For each kill: how long until every message logged before it was answered."""
    answered = observed.answered_ms()
    out: list[float] = []
    for killed in kills_ms:
        before = [
            answered[a.event_id]
            for a in accepted
            if observed.inbound_ms.get(a.event_id, killed + 1) <= killed and a.event_id in answered
        ]
        out.append(float(max(0, max(before, default=killed) - killed)))
    return out


def figures(name: str, **values: Any) -> str:
    """One line of figures, printed by every scenario (``pytest -s`` shows them)."""
    parts = []
    for k, v in values.items():
        if isinstance(v, list):
            v = f"p50={percentile(v, 50):.0f}ms p99={percentile(v, 99):.0f}ms"
        parts.append(f"{k}: {v}")
    line = f"[chaos] {name}: " + "; ".join(parts)
    print(line)
    return line

"""What the web chat shows about the assistant itself: does its model answer, whom does it obey.

Both are read, never asked of the engine, so the page stays right while no engine runs: the
model's state comes from the engine workers' health records (they expire with their worker, so
no worker means ``unknown``, never a stale ``answering``), the people from the fold of
``access:events`` and the owner settings, by the engine's own rules (``aspri.agents.access``).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from aspri.agents.access import Access, same_person
from aspri.config import Settings
from aspri.schemas import chatid
from aspri.schemas.api import ModelStatus, PersonAccess
from aspri.streams.health import instances
from aspri.streams.log import EventLog


def model_status(records: list[dict[str, Any]], name: str) -> ModelStatus:
    """One state from the live workers' records: answering when any worker's model answers."""
    live = [r for r in records if isinstance(r.get("modelReady"), bool)]
    if not live:
        return ModelStatus(state="unknown", name=name)
    name = next((r["model"] for r in live if isinstance(r.get("model"), str)), name)
    answering = [r for r in live if r["modelReady"]]
    chosen = answering or live
    since = min(
        (r["modelSince"] for r in chosen if isinstance(r.get("modelSince"), int)), default=None
    )
    problem = (
        None
        if answering
        else next((r["modelProblem"] for r in live if r.get("modelProblem")), None)
    )
    return ModelStatus(
        state="answering" if answering else "offline",
        name=name,
        since=since,
        problem=problem,
        workers=len(live),
    )


class Assistant:
    """Reads the assistant's state for the web chat."""

    def __init__(self, settings: Settings, redis: Redis, log_: EventLog) -> None:
        self.settings = settings
        self.redis = redis
        self.rules = Access(settings, log_)

    async def model(self) -> ModelStatus:
        records = [i.record for i in await instances(self.redis, "engine") if i.up]
        return model_status(records, self.settings.model_name)

    async def people(self, chat_ids: list[str]) -> list[PersonAccess]:
        await self.rules.refresh()
        pending = self.rules.pending()
        out = []
        for chat_id in chat_ids:
            if chatid.is_group(chat_id):
                allowed = self.rules.group_allowed(chat_id)
                out.append(
                    PersonAccess(chat_id=chat_id, kind="group" if allowed else "ignored-group")
                )
                continue
            kind = self.rules.kind(chat_id)
            until = next((p.expires_at for p in pending if same_person(p.chat_id, chat_id)), None)
            out.append(
                PersonAccess(
                    chat_id=chat_id, kind=kind, pairing_until=until if kind == "stranger" else None
                )
            )
        return out

"""Events the original ASPRI v2 (or a hand-written XADD) put in Redis are answered, once.

- The original README's "Testing Event Flow" entry, fields exactly as its ``redis-cli XADD``
  writes them, and a message as the original WhatsApp service wrote it (no ``chatId``, a
  timestamp in seconds): the engine derives the chat and message ids, records the message in
  ``chat:{chatId}`` and answers it; the same entry appended again adds nothing.
- A ``cronjob:trigger`` from the original cron service whose payload is the original engine's
  ``{prompt, context: {requestedBy, sessionId}}``: the prompt runs in requestedBy's chat,
  under the owner rules, answered there once, also when delivered again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aspri.schemas import WhatsAppMessage
from aspri.streams import keys
from tests.agents.engine.stack import Stack, echo, new_number, scripted
from tests.helpers import wait_until


def readme_entry(number: str, body: str = "Test") -> dict[str, str]:
    """``XADD whatsapp:messages * eventId … type whatsapp:message source whatsapp timestamp …
    data '{"from":"628123456789","body":"Test"}'`` (the original README), for ``number``."""
    return {
        "eventId": f"test-{number}",
        "type": "whatsapp:message",
        "source": "whatsapp",
        "timestamp": str(int(time.time()) * 1000),
        "data": json.dumps({"from": number, "body": body}),
    }


def processed(worker: Any, runner: int) -> Callable[[], bool]:
    start = worker.engine.app.runners[runner].processed
    return lambda: worker.engine.app.runners[runner].processed > start


async def inbound(stack: Stack, chat: str) -> list[WhatsAppMessage]:
    return [
        e.data
        for e in await stack.chat_events(chat)
        if isinstance(e.data, WhatsAppMessage) and not e.data.from_me
    ]


async def test_the_readme_test_event_is_answered_once(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(scripted(echo), owner_numbers=(chat,)) as worker:
        entry = await stack.redis.xadd(keys.WHATSAPP_MESSAGES, readme_entry(number))
        assert await stack.wait_replies(chat, 1) == ["re: Test"]
        (message,) = await inbound(stack, chat)
        assert (message.id, message.chat_id, message.from_) == (entry.decode(), chat, chat)

        done = processed(worker, 0)
        await stack.redis.xadd(keys.WHATSAPP_MESSAGES, readme_entry(number))  # the same again
        await wait_until(done, 20)
        await stack.wait_answered(chat)
        assert await stack.replies(chat) == ["re: Test"]
        assert len(await inbound(stack, chat)) == 1


async def test_a_message_of_the_original_whatsapp_service_is_answered_once(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    data = {
        "id": "3EB0C767D26A1D0F0B1C",
        "from": chat,
        "to": "6281111111111@c.us",
        "body": "Halo",
        "timestamp": int(time.time()),
        "fromMe": False,
    }
    fields = {
        "eventId": "0b9b4f6e-2d7e-4c47-9c39-7f1e1c9d5a10" + number,
        "type": "whatsapp:message",
        "source": "whatsapp",
        "timestamp": str(int(time.time() * 1000)),
        "data": json.dumps(data),
    }
    async with stack.engine(scripted(echo), owner_numbers=(chat,)) as worker:
        await stack.redis.xadd(keys.WHATSAPP_MESSAGES, fields)
        assert await stack.wait_replies(chat, 1) == ["re: Halo"]
        (message,) = await inbound(stack, chat)
        assert message.id == data["id"] and message.timestamp == data["timestamp"] * 1000

        done = processed(worker, 0)
        await stack.redis.xadd(keys.WHATSAPP_MESSAGES, fields)
        await wait_until(done, 20)
        assert await stack.replies(chat) == ["re: Halo"]


async def test_a_foreign_message_from_nobody_is_dead_lettered(stack: Stack) -> None:
    fields = readme_entry("not a number") | {"eventId": f"bad-{new_number()}"}
    async with stack.engine(scripted(echo)):
        await stack.redis.xadd(keys.WHATSAPP_MESSAGES, fields)

        async def dead() -> bool:
            entries = await stack.redis.xrange(keys.dlq(keys.WHATSAPP_MESSAGES))
            return any(e[1].get(b"eventId") == fields["eventId"].encode() for e in entries)

        await wait_until(dead, 20)


def trigger_entry(requested_by: str, job: str) -> dict[str, str]:
    """A ``cronjob:trigger`` as the original cron service published it, with the payload the
    original engine's ``cronjob_create`` prompt produced."""
    payload = {
        "prompt": "Kirim pesan 'Selamat pagi' ke saya",
        "context": {"requestedBy": requested_by, "sessionId": f"{requested_by}@c.us"},
    }
    data = {"jobId": job, "jobName": "pagi", "scheduledTime": 1_765_000_000_000, "payload": payload}
    return {
        "eventId": f"trigger-{job}",
        "type": "cronjob:trigger",
        "source": "cronjob",
        "timestamp": str(int(time.time() * 1000)),
        "data": json.dumps(data),
    }


async def test_a_prompt_trigger_of_the_original_runs_in_requested_by_s_chat_once(
    stack: Stack,
) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(scripted(echo), owner_numbers=(chat,)) as worker:
        fields = trigger_entry(number, f"job-{number}")
        await stack.redis.xadd(keys.CRON_EVENTS, fields)
        (reply,) = await stack.wait_replies(chat, 1)
        assert "Selamat pagi" in reply

        done = processed(worker, 1)
        await stack.redis.xadd(keys.CRON_EVENTS, fields)  # the same trigger delivered again
        await wait_until(done, 20)
        assert await stack.replies(chat) == [reply]


async def test_a_prompt_trigger_for_a_stranger_sends_nothing(stack: Stack) -> None:
    owner, stranger = new_number(), new_number()
    async with stack.engine(scripted(echo), owner_numbers=(f"{owner}@c.us",)) as worker:
        await wait_until(lambda: len(worker.engine.app.runners) == 2, 20)
        done = processed(worker, 1)
        await stack.redis.xadd(keys.CRON_EVENTS, trigger_entry(stranger, f"job-{stranger}"))
        await wait_until(done, 20)
        assert await stack.replies(f"{stranger}@c.us") == []


async def test_the_readme_whatsapp_and_health_requests(stack: Stack) -> None:
    """The original README's "WhatsApp Service API" and health checks, against the gateways
    (with the API key: the one header the original did not need)."""
    wa, cron = stack.settings.whatsapp_url, stack.settings.cronjob_url
    sent = await stack.http.post(
        f"{wa}/api/send-message", json={"phoneNumber": "628123456789", "message": "Hello!"}
    )
    assert sent.status_code in (200, 201), sent.text
    assert sent.json()["data"]["chatId"] == "628123456789@c.us"
    chats = await stack.http.get(f"{wa}/api/chats?limit=10")
    assert chats.status_code == 200 and chats.json()["success"] is True
    messages = await stack.http.get(f"{wa}/api/messages/628123456789?limit=20")
    assert messages.status_code == 200
    assert "Hello!" in [m["body"] for m in messages.json()["data"]["messages"]]
    for base in (wa, cron):
        health = await stack.http.get(f"{base}/health")
        assert health.status_code == 200 and "status" in health.json()["data"]

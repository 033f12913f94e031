"""Voice replies per chat (``/voice on|off``) through the real engine, MCP tools and gateway.

The speech service is a local OpenAI-compatible ``/audio/speech`` stand-in and the LLM the
scripted chat model; the gateway (local web chat engine), the media store, the MCP server and
Valkey are real. The setting is an event in the chat's stream, so a new engine (a restart, any
worker) finds it, however many turns ago it was set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from aspri.agents.prompt import HELP
from aspri.agents.voice import USAGE
from aspri.media.speech import NOT_CONFIGURED
from aspri.schemas import REGISTRY, CronTrigger
from aspri.schemas.chat import ChatVoice
from aspri.schemas.media import Voice
from aspri.streams import keys
from aspri.streams.server import EmbeddedServer
from tests.agents.engine.stack import Stack, echo, new_number, running_stack, scripted
from tests.agents.engine.test_typing import SENDER, arrive
from tests.api.whatsapp.graph_recorder import GraphRecorder, graph_recorder
from tests.api.whatsapp.test_cloud import CLOUD
from tests.helpers import database_url, wait_until
from tests.media.speech_server import Speeches, ogg_of, speech_server

VOICED_DB = 4094
"""The voiced stack's database (the shared stack has 4095)."""
VOICED_CLOUD_DB = 4089


@pytest.fixture(scope="module")
async def speech() -> AsyncIterator[Speeches]:
    async with speech_server() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
async def voiced(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory, speech: Speeches
) -> AsyncIterator[Stack]:
    """A stack whose gateway speaks (``SPEECH_PROVIDER=openai`` at the stand-in)."""
    url = database_url(valkey_server, VOICED_DB)
    data_dir = Path(tmp_path_factory.mktemp("voiced"))
    async with running_stack(
        url,
        data_dir,
        speech_provider="openai",
        speech_base_url=speech.url,
        speech_api_key=speech.key,
    ) as s:
        yield s


@pytest.fixture(scope="module")
async def voiced_cloud(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory, speech: Speeches
) -> AsyncIterator[tuple[Stack, GraphRecorder]]:
    """A stack whose gateway is the Cloud API engine at the Graph stand-in, and speaks."""
    url = database_url(valkey_server, VOICED_CLOUD_DB)
    async with (
        graph_recorder() as graph,
        running_stack(
            url,
            Path(tmp_path_factory.mktemp("voiced-cloud")),
            **CLOUD,
            whatsapp_cloud_api_base=graph.url,
            owner_numbers=(f"{SENDER}@c.us",),
            send_rate_per_s=1000.0,
            send_per_chat_interval_s=0.0,
            speech_provider="openai",
            speech_base_url=speech.url,
            speech_api_key=speech.key,
        ) as stack,
    ):
        yield stack, graph


async def spoken(stack: Stack, chat: str) -> list[tuple[str, bool]]:
    """The assistant's messages: (text, whether it went out as a voice note)."""
    return [
        (e.data.body, isinstance(e.data.media, Voice))
        for e in await stack.chat_events(chat)
        if e.type == "whatsapp:message" and e.data.from_me
    ]


async def test_voice_command_answers_and_its_usage(stack: Stack) -> None:
    """On the shared stack, whose gateway has no speech service."""
    number = new_number()
    chat = f"{number}@c.us"
    model = scripted(echo)
    async with stack.engine(model, speech_provider="none"):
        for i, command in enumerate(["/voice", "/voice maybe", "/voice on", "/help"], 1):
            await stack.say(number, command)
            await stack.wait_replies(chat, i)
        await stack.say(number, "hello")
        await stack.wait_answered(chat)
    replies = await stack.replies(chat)
    assert replies[0].startswith("Voice replies are off in this chat.") and USAGE in replies[0]
    assert replies[1] == f"{USAGE}. They are off now."
    assert replies[2] == (
        f"Voice replies are on, but {NOT_CONFIGURED}, so my answers stay text until the owner "
        "sets one up."
    )
    assert replies[3] == HELP and "/voice on | off" in HELP
    # the reply is text, and the chat is not told again what /voice on already said
    assert replies[4:] == ["re: hello"]
    assert [e.data.on for e in await stack.chat_events(chat) if isinstance(e.data, ChatVoice)] == [
        True
    ]
    assert len(model.calls) == 1, "commands never reach the model"


async def test_a_reply_is_spoken_and_reads_as_its_text(voiced: Stack, speech: Speeches) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    model = scripted(echo)
    async with voiced.engine(model):
        await voiced.say(number, "/voice on")
        await voiced.wait_replies(chat, 1)
        await voiced.say(number, "hello")
        await voiced.wait_replies(chat, 2)
        await voiced.say(number, "/voice off")
        await voiced.wait_replies(chat, 3)
        await voiced.say(number, "again")
        await voiced.wait_replies(chat, 4)
    assert await spoken(voiced, chat) == [
        ("OK: I will answer with voice notes from now on (commands stay text).", False),
        ("re: hello", True),
        ("OK: I will answer in text from now on.", False),
        ("re: again", False),
    ]
    assert {
        "input": "re: hello",
        "voice": "alloy",
        "model": "tts-1",
        "response_format": "opus",
    } in (speech.received)
    shown = [m for m in await voiced.history(number) if m["fromMe"]][1]
    assert shown["body"] == "re: hello" and shown["media"]["kind"] == "voice"
    served = await voiced.http.get(f"{voiced.settings.whatsapp_url}{shown['mediaUrl']}")
    assert served.content == ogg_of("re: hello")
    # the model reads its spoken reply as the words it said
    said = [m.text for m in model.calls[-1] if isinstance(m, AIMessage)]
    assert said == ["re: hello"]


async def test_a_cron_prompts_answer_is_spoken_too(voiced: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    trigger = CronTrigger(
        job_id=f"job-{number}",
        job_name="Morning briefing",
        scheduled_time=1_800_000_000_000,
        payload={"chatId": chat, "prompt": "Give me my morning briefing"},
    )

    def script(messages: list[BaseMessage]) -> AIMessage:
        if "[Scheduled job" in messages[-1].text:
            return AIMessage(content="Sunny, two meetings.")
        return echo(messages)

    async with voiced.engine(scripted(script)):
        await voiced.say(number, "/voice on")
        await voiced.wait_answered(chat)
        await voiced.log.append(keys.CRON_EVENTS, REGISTRY.event(trigger, source="cronjob"))
        await voiced.wait_replies(chat, 2)
    assert (await spoken(voiced, chat))[-1] == ("Sunny, two meetings.", True)


async def test_voice_survives_a_restart_beyond_the_window(voiced: Stack) -> None:
    """Turned on, then more turns than the session window holds; a new engine (empty cache,
    as after a restart or on another worker) still speaks."""
    number = new_number()
    chat = f"{number}@c.us"
    async with voiced.engine(scripted(echo), session_history_limit=2):
        await voiced.say(number, "/voice on")
        await voiced.wait_replies(chat, 1)
        for i in range(3):
            await voiced.say(number, f"turn {i}")
            await voiced.wait_replies(chat, 2 + i)
    async with voiced.engine(scripted(echo), session_history_limit=2):
        await voiced.say(number, "after the restart")
        await voiced.wait_replies(chat, 5)
    assert (await spoken(voiced, chat))[-1] == ("re: after the restart", True)
    assert all(voice for _, voice in (await spoken(voiced, chat))[1:])


async def test_a_speech_outage_sends_the_text_and_tells_once(
    voiced: Stack, speech: Speeches
) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    try:
        async with voiced.engine(scripted(echo)):
            await voiced.say(number, "/voice on")
            await voiced.wait_replies(chat, 1)
            speech.mode = "refuse"
            await voiced.say(number, "one")
            await voiced.wait_replies(chat, 3)
            await voiced.say(number, "two")
            await voiced.wait_replies(chat, 4)
            speech.mode = "ok"
            await voiced.say(number, "three")
            await voiced.wait_replies(chat, 5)
            speech.mode = "garbage"
            await voiced.say(number, "four")
            await voiced.wait_replies(chat, 7)
            await voiced.wait_answered(chat)
    finally:
        speech.mode = "ok"
    told = (
        "(Voice replies are on, but I sent that as text: {}. I will not say this again until "
        "voice notes work, or fail for another reason. /voice off turns them off.)"
    )
    assert (await spoken(voiced, chat))[1:] == [
        ("re: one", False),
        (told.format("the speech service refused (500)"), False),
        ("re: two", False),
        ("re: three", True),
        ("re: four", False),
        (told.format("the speech service did not answer with OGG audio"), False),
    ]
    changes = [e.data for e in await voiced.chat_events(chat) if isinstance(e.data, ChatVoice)]
    assert [(c.on, c.told) for c in changes] == [
        (True, None),
        (True, "the speech service refused (500)"),
        (True, None),
        (True, "the speech service did not answer with OGG audio"),
    ]


async def test_a_cloud_reply_is_uploaded_and_sent_as_a_voice_note(
    voiced_cloud: tuple[Stack, GraphRecorder],
) -> None:
    """From Meta's webhook to Meta's Graph API: ``/voice on``, then a question answered with
    one upload and one ``audio`` message naming it; the command's answer stays text."""
    stack, graph = voiced_cloud
    async with stack.engine(scripted(echo)):
        await arrive(stack, "wamid.voice-on", "/voice on")
        await wait_until(lambda: len(graph.sends()) >= 1, 30)
        await arrive(stack, "wamid.question", "what is the weather?")
        await wait_until(lambda: len(graph.sends()) >= 2, 30)
        await stack.wait_answered(f"{SENDER}@c.us")
    command, reply = graph.sends()
    assert command["type"] == "text" and command["text"]["body"].startswith("OK: I will answer")
    [(media_id, upload)] = graph.uploads.items()
    assert upload.data == ogg_of("re: what is the weather?")
    assert upload.mime == "audio/ogg" and upload.messaging_product == "whatsapp"
    assert reply == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": SENDER,
        "type": "audio",
        "audio": {"id": media_id, "voice": True},
    }
    assert (await spoken(stack, f"{SENDER}@c.us"))[-1] == ("re: what is the weather?", True)

"""The eleven tools over stdio, called with the original ASPRI v2's argument names
(``phoneNumber``, ``message``, ``dryRun``, ``limit``, ``query``, ``jobId``, ``type``,
``scheduledTime``, ``delayTime``, ``enabled``, ``payload``), against the real gateways."""

from __future__ import annotations

import random
from typing import Any

from mcp import ClientSession

from tests.mcp.support import data_of, stdio_session, text_of
from tests.mcp.test_tools import Stack, new_contact

ORIGINAL_ARGUMENTS = {
    "whatsapp_send_message": {"phoneNumber", "message", "dryRun"},
    "whatsapp_get_messages": {"phoneNumber", "limit"},
    "whatsapp_get_chats": {"limit"},
    "whatsapp_search_contacts": {"query"},
    "cronjob_create": {
        "name",
        "type",
        "schedule",
        "scheduledTime",
        "delayTime",
        "enabled",
        "payload",
    },
    "cronjob_list": set(),
    "cronjob_get": {"jobId"},
    "cronjob_update": {"jobId", "name", "schedule", "enabled", "payload"},
    "cronjob_delete": {"jobId"},
    "cronjob_start": {"jobId"},
    "cronjob_stop": {"jobId"},
}
"""Each tool's arguments in the original's ``services/mcp/src/tools/*.ts`` input schemas."""


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    return data_of(await session.call_tool(tool, arguments))


async def test_every_tool_with_the_original_argument_names(mcp_stack: Stack) -> None:
    async with stdio_session(mcp_stack.mcp_env(ASPRI_TIMEZONE="Asia/Jakarta")) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        for name, arguments in ORIGINAL_ARGUMENTS.items():
            assert arguments <= set(tools[name].inputSchema["properties"]), name
        await whatsapp_tools(session, mcp_stack)
        await cron_tools(session)


async def whatsapp_tools(session: ClientSession, stack: Stack) -> None:
    name = f"Sari {random.randrange(10**6)}"
    number, chat_id = await new_contact(stack, name)
    found = await call(session, "whatsapp_search_contacts", query=name.lower())
    assert [c["chatId"] for c in found["contacts"]] == [chat_id]

    checked = await call(
        session, "whatsapp_send_message", phoneNumber=number, message="x", dryRun=True
    )
    assert (checked["chatId"], checked["messageId"], checked["parts"]) == (chat_id, None, 0)
    bad = await session.call_tool(
        "whatsapp_send_message", {"phoneNumber": "call me", "message": "x", "dryRun": True}
    )
    assert bad.isError and text_of(bad).startswith("phoneNumber:")

    sent = await call(session, "whatsapp_send_message", phoneNumber=number, message="Halo Sari")
    assert sent["chatId"] == chat_id and sent["messageId"]
    page = await call(session, "whatsapp_get_messages", phoneNumber=number, limit=10)
    assert [m["body"] for m in page["messages"]] == [
        "Halo Sari",
        "hello",
    ]  # the dry run sent nothing
    chats = await call(session, "whatsapp_get_chats", limit=200)
    assert chat_id in [c["chatId"] for c in chats["chats"]]


async def cron_tools(session: ClientSession) -> None:
    prompt = {"prompt": "Kirim pesan 'Hello' ke 628123456789"}
    recurring = await call(
        session,
        "cronjob_create",
        name="daily",
        type="recurring",
        schedule="0 9 * * *",
        enabled=True,
        payload={"chatId": "628123456789@c.us", "message": "pagi"},
    )
    assert recurring["type"] == "recurring" and recurring["enabled"] is True
    once = await call(
        session,
        "cronjob_create",
        name="once",
        type="one-time",
        scheduledTime="20351221120000",
        payload=prompt,
    )
    assert once["runAt"] == "2035-12-21T12:00:00+07:00"  # read in the tool's timezone
    assert once["scheduledTime"] == "20351221050000"  # shown in the gateway's (UTC here)
    assert once["payload"] == prompt  # no chat given, none to take: recorded when it fires
    later = await call(
        session,
        "cronjob_create",
        name="later",
        type="one-time-relative",
        delayTime="2h3m4s",
        enabled=False,
        payload=prompt,
    )
    assert (later["type"], later["status"], later["enabled"]) == ("one-time", "stopped", False)

    from_chat = await session.call_tool(
        "cronjob_create",
        {"name": "mine", "delayTime": "5m", "payload": {"message": "tea"}},
        meta={"chatId": "628555000111@c.us"},
    )
    assert data_of(from_chat)["payload"] == {"chatId": "628555000111@c.us", "message": "tea"}

    listed = await call(session, "cronjob_list")
    assert {recurring["jobId"], once["jobId"], later["jobId"]} <= {j["id"] for j in listed["jobs"]}
    got = await call(session, "cronjob_get", jobId=recurring["id"])
    assert got["schedule"] == "0 9 * * *"
    updated = await call(
        session,
        "cronjob_update",
        jobId=recurring["id"],
        name="daily 10",
        schedule="0 10 * * *",
        enabled=False,
        payload={"chatId": "628123456789@c.us", "message": "pagi!"},
    )
    assert (updated["name"], updated["schedule"], updated["enabled"]) == (
        "daily 10",
        "0 10 * * *",
        False,
    )
    assert (await call(session, "cronjob_start", jobId=recurring["id"]))["enabled"] is True
    assert (await call(session, "cronjob_stop", jobId=recurring["id"]))["enabled"] is False
    deleted = await call(session, "cronjob_delete", jobId=recurring["id"])
    assert deleted["deleted"] is True and deleted["job"]["id"] == recurring["id"]
    assert (await session.call_tool("cronjob_get", {"jobId": recurring["id"]})).isError

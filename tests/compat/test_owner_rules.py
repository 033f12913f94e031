"""The original's tool arguments from a chat, through the engine's owner rules: ``dryRun``
checks a recipient as a job would be checked and sends nothing; a job whose payload names no
chat is for the chat it was created in."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from tests.agents.engine.stack import Stack, new_number, scripted


async def test_dry_run_and_a_job_without_a_chat(stack: Stack) -> None:
    owner, stranger = new_number(), new_number()
    chat = f"{owner}@c.us"

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            results = [m for m in messages if isinstance(m, ToolMessage)]
            return AIMessage(content=" || ".join(f"{m.name} {m.status}" for m in results))
        check = {"message": "Hello", "dryRun": True}
        job = {"name": "tea", "type": "one-time-relative", "delayTime": "1h"}
        return AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "whatsapp_send_message",
                    "args": {**check, "phoneNumber": stranger},
                    "id": "a",
                },
                {
                    "name": "whatsapp_send_message",
                    "args": {**check, "phoneNumber": owner},
                    "id": "b",
                },
                {
                    "name": "cronjob_create",
                    "args": {**job, "payload": {"message": "tea"}},
                    "id": "c",
                },
            ],
        )

    async with stack.engine(scripted(script), owner_numbers=(chat,)):
        await stack.say(owner, "schedule tea")
        (answer,) = await stack.wait_replies(chat, 1)
    assert answer == (
        "whatsapp_send_message error || whatsapp_send_message success || cronjob_create success"
    )
    assert await stack.replies(f"{stranger}@c.us") == []  # the dry runs sent nothing
    assert await stack.replies(chat) == [answer]
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs", params={"limit": 500})
    (job,) = [j for j in r.json()["data"]["jobs"] if j["payload"].get("chatId") == chat]
    assert job["payload"] == {"chatId": chat, "message": "tea"} and job["type"] == "one-time"

"""The MCP layer through a real client session (in-memory transport), gateways down.

Schemas, descriptions, argument errors, an unreachable gateway and the trace context: all of it
is decided before a gateway answers, so none is needed here.
"""

from __future__ import annotations

import msgspec
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel, ValidationError

from aspri.config import Settings
from aspri.mcp import models
from aspri.schemas import api
from tests.helpers import API_KEY
from tests.mcp.support import memory_session, text_of

TOOLS = {
    "whatsapp_send_message",
    "whatsapp_get_messages",
    "whatsapp_get_chats",
    "whatsapp_search_contacts",
    "cronjob_create",
    "cronjob_list",
    "cronjob_get",
    "cronjob_update",
    "cronjob_delete",
    "cronjob_start",
    "cronjob_stop",
    "memory_save",
    "memory_forget",
    "memory_search",
}
READ_ONLY = {
    "whatsapp_get_messages",
    "whatsapp_get_chats",
    "whatsapp_search_contacts",
    "cronjob_list",
    "cronjob_get",
    "memory_search",
}


def _down(nowhere: str) -> Settings:
    return Settings(
        whatsapp_url=nowhere, cronjob_url=nowhere, timezone="Asia/Jakarta", api_key=API_KEY
    )


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_fourteen_tools_with_descriptions_and_schemas(nowhere: str) -> None:
    async with memory_session(_down(nowhere)) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 80, tool.name
            assert "\n " not in tool.description, "docstring indentation leaked"
            assert tool.inputSchema["type"] == "object"
            assert tool.outputSchema and tool.outputSchema["type"] == "object", tool.name
            assert tool.annotations is not None
            assert tool.annotations.readOnlyHint == (tool.name in READ_ONLY), tool.name
        create = tools["cronjob_create"]
        assert create.description is not None
        assert "Asia/Jakarta" in create.description  # the user's timezone is the default
        props = create.inputSchema["properties"]
        assert props["timezone"]["default"] == "Asia/Jakarta"
        assert "0 8 * * *" in props["schedule"]["description"]
        assert "ISO-8601" in props["runAt"]["description"]
        assert (
            "@c.us"
            in tools["whatsapp_send_message"].inputSchema["properties"]["phoneNumber"][
                "description"
            ]
        )
        for side_effect in TOOLS - READ_ONLY:
            assert "idempotencyKey" in tools[side_effect].inputSchema["properties"], side_effect


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "whatsapp_send_message",
            {"message": "hi"},
            "invalid arguments for whatsapp_send_message: phoneNumber: Field required",
        ),
        (
            "whatsapp_get_messages",
            {"phoneNumber": "6281234567890", "limit": 500},
            "invalid arguments for whatsapp_get_messages: limit: "
            "Input should be less than or equal to 100",
        ),
        (
            "cronjob_create",
            {
                "name": "water",
                "schedule": "0 8 * * *",
                "payload": {"chatId": "1@c.us", "phoneNumber": "2", "message": "drink"},
            },
            "invalid arguments for cronjob_create: payload: "
            "give one of chatId or phoneNumber (the chat to write to), not both",
        ),
        (
            "cronjob_list",
            {"status": "sleeping"},
            "invalid arguments for cronjob_list: status: "
            "Input should be 'running', 'stopped' or 'completed'",
        ),
    ],
)
async def test_bad_argument_is_a_tool_error_naming_the_field(
    nowhere: str, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async with memory_session(_down(nowhere)) as session:
        result = await session.call_tool(tool, arguments)
        assert result.isError
        assert text_of(result) == expected


async def test_a_number_where_text_is_expected_is_accepted(nowhere: str) -> None:
    """Models and CLI clients send phone numbers as JSON numbers; they reach the gateway."""
    async with memory_session(_down(nowhere)) as session:
        result = await session.call_tool(
            "whatsapp_send_message", {"phoneNumber": 6281234567890, "message": 42}
        )
        assert "is unreachable" in text_of(result)


async def test_unknown_tool_is_a_tool_error(nowhere: str) -> None:
    async with memory_session(_down(nowhere)) as session:
        result = await session.call_tool("whatsapp_delete_everything", {})
        assert result.isError
        assert text_of(result) == "Unknown tool: whatsapp_delete_everything"


async def test_unreachable_gateway_is_a_tool_error_and_the_server_keeps_serving(
    nowhere: str,
) -> None:
    async with memory_session(_down(nowhere)) as session:
        result = await session.call_tool("cronjob_get", {"jobId": "j1"})
        assert result.isError
        assert text_of(result).startswith(f"the cron service at {nowhere} is unreachable")
        result = await session.call_tool(
            "whatsapp_send_message", {"phoneNumber": "6281234567890", "message": "hi"}
        )
        assert text_of(result).startswith(f"the WhatsApp service at {nowhere} is unreachable")
        assert len((await session.list_tools()).tools) == 14


async def test_tool_span_continues_the_callers_trace(
    nowhere: str, spans: InMemorySpanExporter
) -> None:
    async with memory_session(_down(nowhere)) as session:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        result = await session.call_tool(
            "whatsapp_get_chats", {}, meta={"traceparent": traceparent}
        )
        assert result.isError  # gateway down: the span records the failure
        finished = spans.get_finished_spans()
        tool = next(s for s in finished if s.name == "tools/call whatsapp_get_chats")
        assert format(tool.context.trace_id, "032x") == TRACE_ID
        assert tool.parent is not None and format(tool.parent.span_id, "016x") == PARENT_ID
        assert tool.kind is SpanKind.SERVER
        assert tool.status.status_code is StatusCode.ERROR
        assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == (
            "whatsapp_get_chats"
        )
        outgoing = [s for s in finished if s.kind is SpanKind.CLIENT]
        assert outgoing, "the HTTP call to the gateway made no client span"
        for span in outgoing:  # one per attempt, each a child of the tool's span
            assert span.parent is not None and span.parent.span_id == tool.context.span_id


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


@pytest.mark.parametrize(
    ("mirror", "contract"),
    [
        (models.SentMessage, api.SentMessage),
        (models.ChatMessage, api.ChatMessage),
        (models.MessagePage, api.MessagePage),
        (models.ChatSummary, api.ChatSummary),
        (models.Contact, api.Contact),
        (models.Job, api.Job),
        (models.JobPage, api.JobPage),
    ],
)
def test_output_models_mirror_the_rest_contract(
    mirror: type[BaseModel], contract: type[msgspec.Struct]
) -> None:
    """Every field a tool returns exists in the gateway's body, with the same wire name."""
    wire = {f.encode_name for f in msgspec.structs.fields(contract)}
    assert _wire_names(mirror) <= wire
    required = {f.encode_name for f in msgspec.structs.fields(contract) if f.required}
    assert required <= _wire_names(mirror), "a required contract field is not returned"


def test_payload_accepts_prompt_and_keeps_extra_fields() -> None:
    payload = models.JobPayload.model_validate(
        {"phoneNumber": "+6281234567890", "prompt": "ask about the exam", "tone": "warm"}
    )
    assert payload.to_json() == {
        "phoneNumber": "+6281234567890",
        "prompt": "ask about the exam",
        "tone": "warm",
    }
    with pytest.raises(ValidationError, match=r"one of message .* not both"):
        models.JobPayload.model_validate({"chatId": "1@c.us", "message": "a", "prompt": "b"})

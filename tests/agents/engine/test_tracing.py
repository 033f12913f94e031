"""One trace per inbound message, as the engine's process sees it: consume → turn → model →
tool. The MCP server is another process that traces only when it exports; the whole trace
across processes, through a real OTLP receiver, is ``tests/e2e/test_traces.py``. A scripted
chat model stands in for the LLM.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.agents.engine.stack import Stack, calls_tool_then_answers, new_number, scripted


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_turn_is_one_trace_with_its_model_and_tool_calls(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    model = scripted(calls_tool_then_answers("cronjob_list", {}, "you have no jobs"))
    async with stack.engine(model):
        sent = await stack.say(number, "what jobs do I have?")
        await stack.wait_answered(chat)
    finished = spans.get_finished_spans()
    (turn,) = [
        s
        for s in named(finished, "turn")
        if s.attributes and s.attributes.get("aspri.event_id") == sent["eventId"]
    ]
    assert turn.attributes is not None
    assert turn.attributes["aspri.turn.kind"] == "reply"
    assert turn.attributes["aspri.llm.calls"] == 2
    assert float(turn.attributes["aspri.llm.ms"]) > 0  # type: ignore[arg-type]
    assert turn.attributes["aspri.tool_calls"] == 1
    trace_id = turn.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert {
        "whatsapp:messages process",
        "execute_tool cronjob_list",
        "tools/call cronjob_list",
        "send message",  # the reply: straight to the gateway, not through MCP
    } <= names
    assert len([s for s in in_trace if s.name.startswith("chat ")]) == 2
    for span in in_trace:
        if span.parent is None and span.kind is SpanKind.CLIENT:
            continue  # the test's own POST (its httpx client is traced when made after setup)
        assert span.attributes is not None
        assert span.attributes["aspri.event_id"] == sent["eventId"], span.name
    (consume,) = named(finished, "whatsapp:messages process")
    assert consume.attributes is not None
    assert consume.attributes["messaging.system"] == "redis"
    assert consume.links and consume.parent is not None
    assert consume.links[0].context.span_id == consume.parent.span_id

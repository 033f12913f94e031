"""``run_agent`` asks the model once outside the graph: a plain answer ends the turn there, an
answer that calls tools is handed to the graph, which does not ask the model for it again.

A scripted chat model stands in for the LLM; the tool is a plain LangChain tool.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool

from aspri.agents.access import Principal
from aspri.agents.agent import Agent, TurnContext, build_agent, run_agent
from aspri.agents.model_state import ModelState
from aspri.agents.scope import Scope
from tests.agents.engine.stack import calls_tool_then_answers, echo, scripted

CHAT = "628111@c.us"


class CountingGraph:
    """The compiled graph, counting its runs."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.runs = 0

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return await self.graph.ainvoke(*args, **kwargs)


def agent_with(script: Any, seen: list[str]) -> tuple[Agent, CountingGraph, Any]:
    def lookup(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    model = scripted(script)
    tool = StructuredTool.from_function(lookup)

    async def ok() -> None:
        return None

    agent = build_agent(model, [tool], "openai", ModelState(ok))
    graph = CountingGraph(agent.graph)
    return dataclasses.replace(agent, graph=graph), graph, model


def context() -> TurnContext:
    owner = Principal("owner", CHAT, CHAT)
    return TurnContext(
        chat_id=CHAT,
        now=datetime.now(UTC),
        timezone="UTC",
        key_base="engine:e1",
        model="scripted",
        scope=Scope(owner, None, None),  # type: ignore[arg-type]  # an owner's: no lookups
    )


async def test_an_answer_without_tools_needs_no_graph() -> None:
    agent, graph, model = agent_with(echo, [])
    ctx = context()
    answer = await run_agent(agent, [HumanMessage(content="hello")], ctx)
    assert answer == "re: hello"
    assert graph.runs == 0
    assert ctx.llm_calls == 1 and ctx.llm_ms > 0
    (prompt,) = model.calls
    assert isinstance(prompt[0], SystemMessage) and CHAT in prompt[0].text
    assert [m.text for m in prompt[1:]] == ["hello"]


async def test_an_answer_with_tool_calls_continues_in_the_graph_without_asking_again() -> None:
    seen: list[str] = []
    agent, graph, model = agent_with(
        calls_tool_then_answers("lookup", {"city": "Bandung"}, "it is sunny"), seen
    )
    ctx = context()
    answer = await run_agent(agent, [HumanMessage(content="weather?")], ctx)
    assert answer == "it is sunny [success]"
    assert graph.runs == 1
    assert seen == ["Bandung"]  # the tool ran once
    assert len(model.calls) == 2  # the first answer was not asked for twice
    assert ctx.llm_calls == 2
    assert [c.position for c in ctx.tool_calls] == ["1.0"]
    last: list[BaseMessage] = model.calls[1]
    assert isinstance(last[-2], AIMessage) and last[-2].tool_calls

"""The LangChain agent of a turn: ``create_agent`` with the MCP tools and one middleware.

The agent is compiled once per worker; what differs per turn (chat id, time, idempotency base)
travels in a ``TurnContext`` passed as the run's context. The middleware sets the system prompt,
times the model calls, and gives every tool call a position (``<model step>.<index>``) from
which its idempotency key is derived — the same on a replayed turn, so a tool with side effects
never acts twice for one event.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import langsmith
import msgspec
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.errors import GraphRecursionError
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command
from langsmith import utils as ls_utils
from opentelemetry.trace import Span, SpanKind

from aspri.agents.model_state import ModelState
from aspri.agents.prompt import TOOL_RESULT, system_prompt
from aspri.agents.scope import Refused, Scope
from aspri.agents.tools import CALL_KEY, CALL_TURN, ToolFailed
from aspri.schemas.chat import ToolCallRecord
from aspri.telemetry.instruments import LLM_ERRORS, LLM_SECONDS, LLM_TOKENS
from aspri.telemetry.tracing import tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.agents")

TOO_MANY_STEPS = (
    "Sorry, I went round in circles on that one. Could you ask again, perhaps in smaller steps?"
)


@dataclass
class TurnContext:
    """Per-turn input of the agent, and what the middleware measured."""

    chat_id: str
    now: datetime
    timezone: str
    key_base: str
    """Idempotency keys of this turn's tool calls are ``<key_base>:tool:<position>``."""
    model: str
    scope: Scope
    """Who the turn runs for and what its tool calls may touch (checked before each call)."""
    person: str = ""
    """Whose memory the turn uses (the memory tools act on it)."""
    cause: str = ""
    """The event the turn answers (a saved fact's source)."""
    memory: str = ""
    """The memory block of the system prompt (facts and summaries, within the budget)."""
    llm_ms: float = 0.0
    llm_calls: int = 0
    tools_ms: float = 0.0
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    asked: ModelResponse[Any] | None = None
    """The model's first answer when ``run_agent`` asked it outside the graph and it called
    tools: the graph's first model call returns it instead of asking again."""


def _position(messages: Sequence[BaseMessage], call_id: str | None) -> str | None:
    """``<n>.<i>``: the i-th call of the n-th model step that asked for tools in this run."""
    step = 0
    for msg in messages:
        if isinstance(msg, AIMessage) and msg.tool_calls:
            step += 1
            for index, call in enumerate(msg.tool_calls):
                if call_id is not None and call.get("id") == call_id:
                    return f"{step}.{index}"
    return None


class TurnMiddleware(AgentMiddleware[Any, TurnContext, Any]):
    """System prompt, model timing and tool-call idempotency keys for every turn."""

    def __init__(self, provider: str, state: ModelState) -> None:
        super().__init__()
        self.provider = provider
        self.state = state

    async def awrap_model_call(
        self,
        request: ModelRequest[TurnContext],
        handler: Callable[[ModelRequest[TurnContext]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        ctx = request.runtime.context
        if ctx.asked is not None:  # asked by run_agent already (timed and traced there)
            asked, ctx.asked = ctx.asked, None
            return asked
        prompt = self.prompt(ctx)
        request = request.override(system_message=SystemMessage(content=prompt))
        return await self.timed(ctx, handler(request))

    @staticmethod
    def prompt(ctx: TurnContext) -> str:
        return system_prompt(ctx.chat_id, ctx.now, ctx.timezone, ctx.scope.principal, ctx.memory)

    async def timed(
        self, ctx: TurnContext, call: Awaitable[ModelResponse[Any]]
    ) -> ModelResponse[Any]:
        """One model call, with its span, its time and its outcome for the breaker."""
        began = time.perf_counter()
        with _tracer.start_as_current_span(
            f"chat {ctx.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": self.provider,
                "gen_ai.provider.name": self.provider,
                "gen_ai.request.model": ctx.model,
            },
        ) as span:
            try:
                response = await call
            except Exception as exc:
                LLM_ERRORS.labels(self.provider, ctx.model).inc()
                self.state.failed(exc)
                raise
            finally:
                elapsed = time.perf_counter() - began
                LLM_SECONDS.labels(self.provider, ctx.model).observe(elapsed)
                ctx.llm_ms += elapsed * 1000
                ctx.llm_calls += 1
            self.state.answered()
            _usage(span, self.provider, ctx.model, response)
            return response

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        ctx = cast(TurnContext, request.runtime.context)
        call = request.tool_call
        position = _position(request.state["messages"], call.get("id"))
        if position is None:
            position = f"x{len(ctx.tool_calls)}"
        key = f"{ctx.key_base}:tool:{position}"
        token = CALL_KEY.set(key)
        turn = CALL_TURN.set((ctx.person, ctx.chat_id, ctx.cause) if ctx.person else None)
        began = time.perf_counter()
        ok = False
        try:
            with _tracer.start_as_current_span(
                f"execute_tool {call['name']}",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": call["name"],
                    "aspri.tool.position": position,
                },
            ) as span:
                result = await _scoped(ctx.scope, request, handler)
                ok = not (isinstance(result, ToolMessage) and result.status == "error")
                span.set_attribute("aspri.tool.ok", ok)
                return result
        finally:
            CALL_KEY.reset(token)
            CALL_TURN.reset(turn)
            ms = (time.perf_counter() - began) * 1000
            ctx.tools_ms += ms
            ctx.tool_calls.append(
                ToolCallRecord(
                    name=call["name"],
                    position=position,
                    idempotency_key=key,
                    ok=ok,
                    ms=round(ms, 2),
                    args=dict(call.get("args") or {}),
                )
            )


def _usage(span: Span, provider: str, model: str, response: ModelResponse[Any]) -> None:
    """GenAI attributes of the answer: the model that answered and the tokens, when reported."""
    for message in response.result:
        if not isinstance(message, AIMessage):
            continue
        answered_by = message.response_metadata.get("model_name")
        if answered_by:
            span.set_attribute("gen_ai.response.model", str(answered_by))
        usage = message.usage_metadata
        if usage:
            span.set_attribute("gen_ai.usage.input_tokens", usage["input_tokens"])
            span.set_attribute("gen_ai.usage.output_tokens", usage["output_tokens"])
            LLM_TOKENS.labels(provider, model, "input").inc(usage["input_tokens"])
            LLM_TOKENS.labels(provider, model, "output").inc(usage["output_tokens"])


async def _scoped(
    scope: Scope,
    request: ToolCallRequest,
    handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
) -> ToolMessage | Command[Any]:
    """Run the call if the turn's scope allows it; a refusal is the tool error the model sees."""
    call = request.tool_call
    name, args = call["name"], dict(call.get("args") or {})
    try:
        await scope.check(name, args)
        if name == "cronjob_list" and not scope.principal.is_owner:
            data = await scope.tools.call_data(name, args, idempotency_key=CALL_KEY.get())
            content = msgspec.json.encode(scope.filter_jobs(data)).decode()
            return _as_data(ToolMessage(content=content, tool_call_id=call["id"], name=name))
    except (Refused, ToolFailed) as exc:
        refused = isinstance(exc, Refused)
        log.warning(
            "tool call refused" if refused else "tool call failed",
            extra={"tool": name, "principal": scope.principal.kind},
        )
        text = f"Refused: {exc}" if refused else f"Error: {exc}"
        return ToolMessage(content=text, tool_call_id=call["id"], name=name, status="error")
    return _as_data(await handler(request))


def _as_data(result: ToolMessage | Command[Any]) -> ToolMessage | Command[Any]:
    """Mark a tool's result as data: what it contains (messages other people wrote, fetched
    text) is never an instruction to follow."""
    if not isinstance(result, ToolMessage):
        return result
    content: Any = result.content
    if isinstance(content, str):
        content = f"{TOOL_RESULT}\n{content}"
    else:
        content = [{"type": "text", "text": TOOL_RESULT}, *content]
    return result.model_copy(update={"content": content})


async def _inline_unless_tracing(
    default: Callable[..., Awaitable[Any]],
    ctx: contextvars.Context,
    func: Callable[..., Any],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """LangSmith's ``aio_to_thread``, run inline while LangSmith tracing is off.

    ``create_agent`` wraps each middleware's ``awrap_model_call`` in ``langsmith.traceable``,
    which moves its run bookkeeping to a worker thread twice per model call even when nothing
    traces: two thread hops on every model call of every turn. With tracing off that
    bookkeeping does no I/O, so it runs on the loop; with tracing on, LangSmith's own way."""
    if ls_utils.tracing_is_enabled():
        return await default(ctx, func, *args, **kwargs)
    return ctx.run(func, *args, **kwargs)


@dataclass(frozen=True)
class Agent:
    """The compiled ``create_agent`` graph, and the model bound to the tools as its model node
    binds it, for the turns that need no graph (``run_agent``)."""

    graph: Any
    bound: Runnable[Any, BaseMessage]
    middleware: TurnMiddleware


def build_agent(
    model: BaseChatModel, tools: Sequence[BaseTool], provider: str, state: ModelState
) -> Agent:
    """The agent; run it with ``run_agent``. ``provider`` (``LLM_PROVIDER``) names the model's
    API in spans and metrics; every model call's outcome goes to ``state``."""
    langsmith.set_runtime_overrides(aio_to_thread=_inline_unless_tracing)
    middleware = TurnMiddleware(provider, state)
    graph = create_agent(model, list(tools), middleware=[middleware], context_schema=TurnContext)
    bound = model.bind_tools(list(tools), tool_choice=None) if tools else model.bind()
    return Agent(graph, bound, middleware)


async def _ask(agent: Agent, messages: list[BaseMessage], ctx: TurnContext) -> ModelResponse[Any]:
    """The model call the graph's model node makes first (system prompt, then the messages)."""
    system = SystemMessage(content=agent.middleware.prompt(ctx))

    async def call() -> ModelResponse[Any]:
        return ModelResponse(result=[await agent.bound.ainvoke([system, *messages])])

    return await agent.middleware.timed(ctx, call())


async def run_agent(
    agent: Agent, messages: list[BaseMessage], ctx: TurnContext, *, recursion_limit: int = 24
) -> str:
    """Run one turn and return the text of the model's final answer.

    The model is asked first without the graph: an answer that calls no tool is the turn's
    answer, and LangGraph's run (about 2 ms of CPU around an instant model, most of a turn's
    agent time) is paid only by turns that use tools, whose graph starts from that answer
    (``TurnContext.asked``). With LangSmith tracing on, every turn runs the graph, traced.

    A model that keeps calling tools past ``recursion_limit`` steps gets a fixed answer instead
    of a retry: running the same turn again would loop the same way.
    """
    if not ls_utils.tracing_is_enabled():
        asked = await _ask(agent, messages, ctx)
        answer = asked.result[-1] if asked.result else None
        if isinstance(answer, AIMessage) and not (answer.tool_calls or answer.invalid_tool_calls):
            return answer.text.strip()
        ctx.asked = asked
    try:
        state = await agent.graph.ainvoke(
            {"messages": messages}, context=ctx, config={"recursion_limit": recursion_limit}
        )
    except GraphRecursionError:
        log.warning(
            "agent step limit reached",
            extra={"chat": ctx.chat_id, "tool_calls": len(ctx.tool_calls)},
        )
        return TOO_MANY_STEPS
    final = state["messages"][-1]
    return final.text.strip() if isinstance(final, AIMessage) else ""

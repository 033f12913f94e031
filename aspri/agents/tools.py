"""The engine's tools: one long-lived MCP session per worker, over stdio, restarted if it dies.

``aspri mcp`` is spawned once with the worker's environment; its tools are loaded once with
``langchain_mcp_adapters.load_mcp_tools(session)`` (not ``MultiServerMCPClient.get_tools()``,
which would spawn a server per call). Every call, the model's and the engine's own, goes through
``McpTools.call``: it puts the caller's trace context (``traceparent``, and the inbound eventId
as ``baggage``) and the call's idempotency key in the
request's ``_meta`` (and in the ``idempotencyKey`` argument of tools that take one), with the
``causationId`` of the message being answered, and when
the server process is gone it starts a new one and retries once — safe, because side effects
carry idempotency keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.interceptors import MCPToolCallRequest
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage
from mcp.types import (
    CONNECTION_CLOSED,
    CallToolRequest,
    CallToolRequestParams,
    CallToolResult,
    ClientRequest,
    RequestParams,
    TextContent,
    Tool,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from referencing import Registry

from aspri import apikey
from aspri.config import Settings
from aspri.telemetry.instruments import TOOL_CALLS, TOOL_ERRORS, tool_label
from aspri.telemetry.tracing import inject, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.agents")

CALL_KEY: ContextVar[str | None] = ContextVar("aspri_tool_call_key", default=None)
"""The idempotency key of the model's tool call in progress (set by the agent middleware)."""
CALL_TURN: ContextVar[tuple[str, str, str] | None] = ContextVar(
    "aspri_tool_call_turn", default=None
)
"""The person and chat the model's tool call in progress acts for, and the event its turn
answers (``_meta.person``, ``_meta.chatId``, ``_meta.turnCause``): the memory tools act on
them, whatever the model's arguments say."""

_TRANSPORT_ERRORS = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


class ResultCheck:
    """Checks each structured tool result against the tool's output schema, compiled once.

    ``ClientSession.call_tool`` validates the output schema itself against its metaschema on
    every call (about 2 ms, half of a turn's CPU in ``bench/engine.py``), and offers no public
    way to do it once. So the engine sends ``tools/call`` through the session's public
    ``send_request`` and checks the result here: the same check, with validators built once from
    the listed tools (listed again when a name is new, as the SDK does).
    """

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}
        self._known: set[str] = set()

    def learn(self, tools: list[Tool]) -> None:
        """Compile the output schemas of ``tools`` (an invalid schema fails here, once)."""
        for tool in tools:
            self._known.add(tool.name)
            if tool.outputSchema is None:
                self._validators.pop(tool.name, None)
                continue
            cls = validator_for(tool.outputSchema)
            cls.check_schema(tool.outputSchema)
            self._validators[tool.name] = cls(tool.outputSchema, registry=Registry())

    async def call(
        self,
        session: ClientSession,
        name: str,
        args: dict[str, Any],
        *,
        read_timeout: timedelta,
        meta: dict[str, Any] | None,
    ) -> CallToolResult:
        """``tools/call`` on ``session``; a result that breaks the tool's schema raises."""
        params = CallToolRequestParams(
            name=name, arguments=args, _meta=RequestParams.Meta(**meta) if meta else None
        )
        result = await session.send_request(
            ClientRequest(CallToolRequest(params=params)),
            CallToolResult,
            request_read_timeout_seconds=read_timeout,
        )
        if result.isError:
            return result
        if name not in self._known:
            self.learn((await session.list_tools()).tools)
        validator = self._validators.get(name)
        if validator is None:
            return result
        if result.structuredContent is None:
            raise RuntimeError(
                f"Tool {name} has an output schema but returned no structured content"
            )
        error = best_match(validator.iter_errors(result.structuredContent))
        if error is not None:
            raise RuntimeError(f"Invalid structured content returned by tool {name}: {error}")
        return result


class ToolsUnavailable(Exception):
    """The MCP server could not be reached, even after a restart."""


class ToolFailed(Exception):
    """A tool the engine called itself returned an error; the text says why."""


def mcp_environment(settings: Settings) -> dict[str, str]:
    """The environment of the spawned ``aspri mcp``: ours, with the settings it depends on."""
    env = dict(os.environ)
    env |= {
        "WHATSAPP_URL": settings.whatsapp_url,
        "CRONJOB_URL": settings.cronjob_url,
        "LOG_FORMAT": settings.log_format,
        "LOG_LEVEL": settings.log_level,
        "ASPRI_DATA_DIR": str(settings.data_dir),
        "ASPRI_TIMEZONE": settings.timezone,
        "OTEL_SERVICE_NAME": "aspri-mcp",  # its own service in traces, whatever the engine's is
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    key = apikey.effective(settings)
    # The engine's own credential, not the key: only it may use the engine's idempotency keys.
    env["ASPRI_API_KEY"] = apikey.engine_credential(key) if key else apikey.OFF
    return env


def result_data(result: CallToolResult) -> Any:
    """The structured result of a tool call (its JSON text when there is none)."""
    if result.structuredContent is not None:
        data = result.structuredContent
        if set(data) == {"result"}:  # FastMCP wraps results that are not objects
            return data["result"]
        return data
    text = "".join(c.text for c in result.content if isinstance(c, TextContent))
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def result_text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


class McpTools:
    """One MCP client session to ``aspri mcp`` over stdio, kept alive for the worker's life."""

    def __init__(
        self,
        settings: Settings,
        *,
        command: list[str] | None = None,
        call_timeout_s: float = 60.0,
        start_timeout_s: float = 60.0,
    ) -> None:
        argv = command or [sys.executable, "-m", "aspri.cli", "mcp"]
        self.params = StdioServerParameters(
            command=argv[0], args=argv[1:], env=mcp_environment(settings)
        )
        self.call_timeout = timedelta(seconds=call_timeout_s)
        self.start_timeout_s = start_timeout_s
        self.tools: list[BaseTool] = []
        self.keyed_tools: set[str] = set()
        """Tools whose input schema takes an ``idempotencyKey``."""
        self.restarts = 0
        self._session: ClientSession | None = None
        self._results = ResultCheck()
        self._generation = 0
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._broken = asyncio.Event()
        self._calls = 0
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def start(self) -> None:
        """Spawn the server and load its tools; raise ToolsUnavailable if it does not start."""
        self._task = asyncio.create_task(self._supervise(), name="mcp-session")
        try:
            await asyncio.wait_for(self._ready.wait(), self.start_timeout_s)
        except TimeoutError:
            await self.close()
            raise ToolsUnavailable(f"the MCP server did not start: {self._failure}") from None

    async def close(self) -> None:
        self._closing = True
        self._broken.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _supervise(self) -> None:
        """Own the stdio transport (anyio scopes must be left by the task that entered them)."""
        backoff = 0.1
        while not self._closing:
            try:
                async with (
                    stdio_client(self.params) as (read, write),
                    anyio.create_task_group() as watch,
                ):
                    relayed = await watch.start(self._relay, read)
                    async with ClientSession(relayed, write) as session:
                        await self._serve(session)
                    watch.cancel_scope.cancel()
                backoff = 0.1
            except Exception as exc:
                self._failure = exc
                log.warning("mcp session failed", extra={"error": repr(exc)})
            finally:
                self._session = None
                self._ready.clear()
                self._broken.clear()
            if not self._closing:
                self.restarts += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _serve(self, session: ClientSession) -> None:
        """Offer ``session`` to callers until it breaks (a failed call, or the server's exit)."""
        await session.initialize()
        if not self.tools:
            await self._load(session)
        async with self._changed:
            self._session = session
            self._generation += 1
            self._changed.notify_all()
        self._ready.set()
        log.info(
            "mcp session ready", extra={"generation": self._generation, "tools": len(self.tools)}
        )
        await self._broken.wait()

    async def _relay(
        self,
        read: MemoryObjectReceiveStream[SessionMessage | Exception],
        *,
        task_status: anyio.abc.TaskStatus[MemoryObjectReceiveStream[SessionMessage | Exception]],
    ) -> None:
        """Hand the server's messages to the session, and notice when they end.

        The server's stdout ends when it exits; the SDK then fails the calls in flight, but
        nothing restarts a server that died between calls. Ending here marks the session
        broken, so the supervisor starts a new server at once, not at the next call — once
        the calls in flight have had their error from the session (closing it first would
        leave them waiting for their timeout).
        """
        send, relayed = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        task_status.started(relayed)
        async with send, read:
            async for message in read:
                await send.send(message)
        self._session = None  # new calls wait for the next server
        if not self._closing:
            log.warning("mcp server exited", extra={"generation": self._generation})
        await self._no_calls.wait()
        self._broken.set()

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Count a call on the live session: its server's exit waits for none to be left."""
        self._calls += 1
        self._no_calls.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._no_calls.set()

    async def _load(self, session: ClientSession) -> None:
        listed = await session.list_tools()
        self._results.learn(listed.tools)
        self.keyed_tools = {
            tool.name
            for tool in listed.tools
            if "idempotencyKey" in tool.inputSchema.get("properties", {})
        }
        self.tools = await load_mcp_tools(
            session, tool_interceptors=[self._intercept], server_name="aspri"
        )

    async def _intercept(
        self,
        request: MCPToolCallRequest,
        handler: Callable[[MCPToolCallRequest], Awaitable[Any]],
    ) -> CallToolResult:
        """Route the model's tool calls through ``call`` (live session, keys, trace context)."""
        return await self.call(request.name, dict(request.args), idempotency_key=CALL_KEY.get())

    async def _live(self, after: int) -> tuple[ClientSession, int]:
        """The current session, once there is one newer than generation ``after``."""

        def usable() -> bool:
            return self._session is not None and self._generation > after

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(usable), self.start_timeout_s)
            except TimeoutError:
                raise ToolsUnavailable(f"the MCP server is not running: {self._failure}") from None
            assert self._session is not None
            return self._session, self._generation

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        causation_id: str | None = None,
        voice: bool = False,
    ) -> CallToolResult:
        """Call a tool; a tool error comes back as a result with ``isError``, not raised.
        ``voice``: ask ``whatsapp_send_message`` for a voice note (``_meta.voice``)."""
        if idempotency_key and name in self.keyed_tools:
            args = {**args, "idempotencyKey": idempotency_key}
        label = tool_label(name)
        TOOL_CALLS.labels(label).inc()
        with _tracer.start_as_current_span(
            f"tools/call {name}",
            kind=SpanKind.CLIENT,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.tool.name": name,
                "rpc.system": "mcp",
                "rpc.method": "tools/call",
            },
        ) as span:
            meta: dict[str, Any] = inject({})  # traceparent, tracestate, baggage (eventId)
            if idempotency_key:
                meta["idempotencyKey"] = idempotency_key
                span.set_attribute("aspri.idempotency_key", idempotency_key)
            if causation_id:
                meta["causationId"] = causation_id
            if voice:
                meta["voice"] = True
            turn = CALL_TURN.get()
            if turn is not None:
                meta["person"], meta["chatId"], meta["turnCause"] = turn
            generation = 0
            for attempt in range(2):
                session, generation = await self._live(generation)
                try:
                    with self._in_flight():
                        result = await self._results.call(
                            session, name, args, read_timeout=self.call_timeout, meta=meta or None
                        )
                except McpError as exc:
                    if exc.error.code != CONNECTION_CLOSED:
                        raise
                    failure: Exception = exc
                except _TRANSPORT_ERRORS as exc:
                    failure = exc
                else:
                    if result.isError:
                        TOOL_ERRORS.labels(label).inc()
                        span.set_status(Status(StatusCode.ERROR, result_text(result)[:200]))
                    return result
                log.warning(
                    "mcp server gone, restarting", extra={"tool": name, "attempt": attempt + 1}
                )
                if generation == self._generation:
                    self._broken.set()
            TOOL_ERRORS.labels(label).inc()
            raise ToolsUnavailable(f"the MCP server failed twice calling {name}: {failure!r}")

    async def call_data(
        self,
        name: str,
        args: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        causation_id: str | None = None,
        voice: bool = False,
    ) -> Any:
        """Call a tool the engine itself needs; raise ToolFailed with its text on an error."""
        result = await self.call(
            name, args, idempotency_key=idempotency_key, causation_id=causation_id, voice=voice
        )
        if result.isError:
            raise ToolFailed(result_text(result) or f"{name} failed")
        return result_data(result)

"""The MCP server: fourteen tools over stdio (spawned by the engine) or streamable HTTP at ``/mcp``.

Built on the SDK's FastMCP. One ``httpx.AsyncClient`` serves every session of the process (the
SDK's lifespan runs once per session, so the client is opened here, around the transport).
Each tool call gets a span that continues the caller's trace from ``_meta.traceparent`` (and its
``baggage``, which names the inbound event, so the gateway calls made inside carry it too) and one
log line; any failure comes back as a tool error with text the model can act on, never as an
exception that ends the session or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from typing import Any, Literal

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import AnyFunction, CallToolResult, Icon, TextContent, ToolAnnotations
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from aspri import apikey
from aspri.config import Settings
from aspri.mcp import cron_tools, memory_tools, whatsapp_tools
from aspri.mcp.auth import StaticTokenVerifier, auth_settings
from aspri.mcp.gateway import GatewayError, Gateways, new_http_client
from aspri.mcp.memory_tools import MemoryBackend
from aspri.mcp.meta import request_meta
from aspri.mcp.pipes import stdio_pipes
from aspri.memory.store import MemoryRefused
from aspri.telemetry.tracing import continued, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

Transport = Literal["stdio", "http"]
HTTP_PATH = "/mcp"

INSTRUCTIONS = """Tools of ASPRI, a personal assistant living in WhatsApp.
whatsapp_* tools send messages and read chats, chat lists and contacts; cronjob_* tools schedule
messages for later (reminders, recurring check-ins) and manage those jobs; memory_* tools save,
forget and search what the person of the conversation told you before. Chat ids look like
6281234567890@c.us. When a tool returns an error, its text says what to fix."""


class AspriMCP(FastMCP[Any]):
    """FastMCP with a span and a log line per tool call and errors as plain tool-error text."""

    def add_tool(
        self,
        fn: AnyFunction,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        """Register ``fn``; its docstring becomes the description without source indentation."""
        super().add_tool(
            fn,
            name=name,
            title=title,
            description=inspect.cleandoc(description or fn.__doc__ or ""),
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )

    async def run_pipes_async(self) -> None:
        """``run_stdio_async`` without a thread hop per message (``aspri.mcp.pipes``)."""
        async with stdio_pipes() as (read_stream, write_stream):
            await self._mcp_server.run(
                read_stream, write_stream, self._mcp_server.create_initialization_options()
            )

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        ctx = self.get_context()
        try:
            request = ctx.request_context
        except ValueError:  # called outside a request
            request = None
        meta = request_meta(request)
        attributes: dict[str, str] = {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
        }
        if request is not None:
            attributes["jsonrpc.request.id"] = str(request.request_id)
        started = time.perf_counter()
        with (
            continued(meta),  # traceparent, tracestate and baggage (the eventId)
            _tracer.start_as_current_span(
                f"tools/call {name}", kind=SpanKind.SERVER, attributes=attributes
            ) as span,
        ):
            try:
                result = await super().call_tool(name, arguments)
            except ToolError as exc:
                text = error_text(name, exc)
                cause = exc.__cause__ or exc
                span.set_status(Status(StatusCode.ERROR, text))
                span.set_attribute("error.type", type(cause).__name__)
                log.warning(
                    "tool call failed",
                    extra={"tool": name, "error": text, "duration_ms": _ms(started)},
                )
                return CallToolResult(content=[TextContent(type="text", text=text)], isError=True)
            log.info("tool call", extra={"tool": name, "duration_ms": _ms(started)})
        if isinstance(result, tuple):
            # (content, structured): pydantic already checked it against the tool's output model.
            # Handing the SDK a finished result skips its second check with jsonschema, which
            # re-validates the schema itself against the metaschema on every call (3-14 ms).
            content, structured = result
            return CallToolResult(content=list(content), structuredContent=structured)
        return result


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def error_text(tool: str, exc: ToolError) -> str:
    """What the model reads for a failed call: the gateway's message or the bad arguments."""
    cause = exc.__cause__
    if isinstance(cause, GatewayError | MemoryRefused):
        return str(cause)
    if isinstance(cause, ValidationError):
        problems = []
        for error in cause.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return f"invalid arguments for {tool}: " + "; ".join(problems)
    if cause is None:  # raised by the SDK itself, e.g. an unknown tool name
        return str(exc)
    log.error("tool raised unexpectedly", exc_info=cause, extra={"tool": tool})
    return f"{tool} failed unexpectedly ({type(cause).__name__}); the server log has details"


def build_server(
    settings: Settings, gateways: Gateways, memory: MemoryBackend | None = None
) -> AspriMCP:
    """The server with its fourteen tools; on HTTP a bearer token is required: ``MCP_TOKEN``,
    else the API key (none only with ``ASPRI_API_KEY=off`` and no ``MCP_TOKEN``)."""
    token = http_token(settings)
    server = AspriMCP(
        name="aspri",
        instructions=INSTRUCTIONS,
        host=settings.host,
        port=settings.mcp_port,
        streamable_http_path=HTTP_PATH,
        # Tools send no progress or log notifications mid-call, so each POST is answered with
        # one JSON body instead of an SSE stream: same protocol, a third less time per call.
        json_response=True,
        token_verifier=StaticTokenVerifier(token) if token else None,
        auth=auth_settings(f"http://{settings.host}:{settings.mcp_port}") if token else None,
    )
    whatsapp_tools.register(server, gateways)
    cron_tools.register(server, gateways, settings.timezone)
    memory_tools.register(server, memory or MemoryBackend(settings))

    server.custom_route("/health", methods=["GET"])(_health)
    return server


def http_token(settings: Settings) -> str | None:
    return settings.mcp_token or apikey.effective(settings)


async def _health(_request: Request) -> JSONResponse:
    """Liveness for supervisors and compose; not behind the token, it tells nothing secret."""
    return JSONResponse({"success": True, "data": {"status": "ok", "path": HTTP_PATH}})


async def serve(settings: Settings, transport: Transport = "stdio") -> None:
    """Run the server until the client disconnects (stdio) or the process is told to stop."""
    memory = MemoryBackend(settings)
    async with new_http_client(settings) as http, contextlib.aclosing(memory):
        server = build_server(settings, Gateways(http, settings), memory)
        if transport == "stdio":
            log.info("mcp server on stdio", extra={"tools": len(await server.list_tools())})
            await server.run_pipes_async()
            return
        if http_token(settings) is None:
            log.warning(
                "MCP over HTTP without a token (ASPRI_API_KEY=off, no MCP_TOKEN): anyone who "
                "can reach the port can use the tools",
                extra={"host": settings.host},
            )
        config = uvicorn.Config(
            server.streamable_http_app(),
            host=settings.host,
            port=settings.mcp_port,
            log_config=None,
            access_log=False,
            use_colors=False,
        )
        log.info(
            "mcp server on streamable http",
            extra={
                "url": f"http://{settings.host}:{settings.mcp_port}{HTTP_PATH}",
                "auth": http_token(settings) is not None,
            },
        )
        await uvicorn.Server(config).serve()


def main(settings: Settings, transport: Transport = "stdio") -> int:
    """``aspri mcp [--transport stdio|http]``."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, transport))
    return 0

"""The engine's MCP client checks structured tool results against each tool's output schema,
through the SDK's public API only, against a real MCP server process over stdio."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from aspri.agents.tools import McpTools
from aspri.config import Settings

SERVER = textwrap.dedent(
    '''
    """An MCP server whose tool returns whatever structured content it is asked to."""
    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    server = Server("echo")
    SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(
                name="echo",
                inputSchema={"type": "object", "properties": {"content": {}}},
                outputSchema=SCHEMA,
            ),
            types.Tool(name="plain", inputSchema={"type": "object"}),
        ]

    @server.call_tool()
    async def call_tool(name: str, arguments: dict) -> types.CallToolResult:
        content = arguments.get("content")  # returned as is: the server checks nothing
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=repr(content))],
            structuredContent=content,
        )

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
    '''
)


async def test_results_are_checked_against_the_output_schema(tmp_path: Path) -> None:
    script = tmp_path / "echo_server.py"
    script.write_text(SERVER)
    tools = McpTools(Settings(data_dir=tmp_path), command=[sys.executable, str(script)])
    await tools.start()
    try:
        assert {t.name for t in tools.tools} == {"echo", "plain"}
        good = await tools.call("echo", {"content": {"n": 1}})
        assert good.structuredContent == {"n": 1} and not good.isError
        with pytest.raises(RuntimeError, match="Invalid structured content returned by tool echo"):
            await tools.call("echo", {"content": {"n": "one"}})
        with pytest.raises(RuntimeError, match="returned no structured content"):
            await tools.call("echo", {"content": None})
        plain = await tools.call("plain", {"content": {"anything": True}})
        assert plain.structuredContent == {"anything": True}  # no output schema, nothing to check
        assert tools.restarts == 0  # a rejected result does not cost the session
    finally:
        await tools.close()

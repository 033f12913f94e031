"""The MCP server's stdio transport on the event loop's own pipes.

The SDK's ``stdio_server`` wraps stdin and stdout in ``anyio.wrap_file``: every line read, every
write and every flush goes through a worker thread — three thread hops per tool call, on the
path of every turn. Here stdin and stdout are asyncio pipe transports (the engine spawns the
server with pipes), so a message costs no thread at all; the messages, their parsing and the
memory streams handed to the SDK's server are the same as ``stdio_server``'s. When stdin or
stdout is not a pipe (a terminal, a file) the SDK's transport is used.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import mcp.types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]
]


def _is_pipe(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def stdio_pipes() -> AsyncIterator[Streams]:
    """The read and write streams of an MCP session over this process's stdin and stdout."""
    if not (_is_pipe(sys.stdin.fileno()) and _is_pipe(sys.stdout.fileno())):
        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)  # one line is one message, however large
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(sys.stdin.fileno(), "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(sys.stdout.fileno(), "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    incoming_writer, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with incoming_writer:
            while line := await reader.readline():
                try:
                    message = types.JSONRPCMessage.model_validate_json(line)
                except Exception as exc:  # the SDK's transport hands bad lines on the same way
                    await incoming_writer.send(exc)
                    continue
                await incoming_writer.send(SessionMessage(message))

    async def write_lines() -> None:
        async with outgoing_reader:
            async for session_message in outgoing_reader:
                json = session_message.message.model_dump_json(by_alias=True, exclude_none=True)
                writer.write(json.encode() + b"\n")
                await writer.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_lines)
            tg.start_soon(write_lines)
            yield incoming, outgoing
    finally:
        transport.close()

"""Limits at the HTTP layer: how long a client may take to send its headers and body, and how
deeply a JSON body may nest.

uvicorn (0.54) starts its keep-alive timer only after a response, so a connection that sends
nothing, or half a request line, is held forever; and a body that never arrives keeps the
handler waiting. ``TimedHttpProtocol`` closes a connection whose headers are not complete within
``HEADER_TIMEOUT_S``; ``BodyLimits`` reads the body first (408 when it stalls, 413 past the size
limit) and refuses JSON nested deeper than ``MAX_JSON_DEPTH`` (400) — a 20,000-deep body used to
end in a RecursionError inside the decoder.
"""

from __future__ import annotations

import asyncio
import re
import time
from asyncio import TimerHandle, Transport
from typing import Any

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aspri.api.common import ApiError

HEADER_TIMEOUT_S = 10.0
"""From connecting (or from the first byte of a next request) to the end of its headers."""
BODY_IDLE_TIMEOUT_S = 10.0
"""The longest pause between two pieces of a body."""
BODY_TIMEOUT_S = 30.0
"""The whole body, however it trickles in."""
MAX_JSON_DEPTH = 32
"""Deeper than any body of these APIs (a job payload nests three levels)."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UPLOAD_OPT = "upload"
"""A route handler ``opt`` key: its body is an upload, limited by ``upload_max_bytes``."""

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_TIMEOUT_BODY = (
    b'{"success":false,"error":{"code":"request_timeout",'
    b'"message":"the request headers took too long"}}'
)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (brackets inside strings do not
    count)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def too_deep(body: bytes) -> int | None:
    """``body``'s depth when it exceeds ``MAX_JSON_DEPTH``; cheap for ordinary bodies, which
    have too few brackets to be that deep and are not scanned."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return None
    depth = json_depth(body)
    return depth if depth > MAX_JSON_DEPTH else None


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the request headers."""

    header_timeout_s = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` of a gateway."""
    return {"http": TimedHttpProtocol, "timeout_keep_alive": 5}


class BodyLimits(ASGIMiddleware):
    """Reads a request body whole, within the size and time limits, checks its JSON depth, and
    hands the same bytes to the handler (so a signature over the raw body still matches)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_bytes: int, upload_max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") not in BODY_METHODS:
            await next_app(scope, receive, send)
            return
        handler = scope.get("route_handler")
        upload = handler is not None and handler.opt.get(UPLOAD_OPT, False)
        body = await self._read(receive, self.upload_max_bytes if upload else self.max_bytes)
        media = Headers.from_scope(scope).get("content-type", "").partition(";")[0].strip()
        if media.endswith("json") and (depth := too_deep(body)) is not None:
            raise ApiError(
                400,
                "too_deeply_nested",
                f"body: JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} allowed",
            )
        handed = False

        async def replay() -> ReceiveMessage:
            nonlocal handed
            if handed:
                return await receive()  # after the body: only http.disconnect can come
            handed = True
            whole: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return whole

        await next_app(scope, replay, send)

    async def _read(self, receive: Receive, max_bytes: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + BODY_TIMEOUT_S
        while True:
            wait = min(BODY_IDLE_TIMEOUT_S, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                raise ApiError(
                    408,
                    "request_timeout",
                    f"body: not received in time (at most {BODY_IDLE_TIMEOUT_S:g} s between "
                    f"pieces, {BODY_TIMEOUT_S:g} s in all)",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.disconnect":
                raise ApiError(400, "client_disconnected", "the client went away mid-body")
            chunk = message.get("body", b"")
            assert isinstance(chunk, bytes)
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(
                    413,
                    "payload_too_large",
                    f"body: more than {max_bytes} bytes",
                    headers={"Connection": "close"},
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

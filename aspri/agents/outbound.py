"""The engine's own sends (replies, notices, cron messages): straight to the WhatsApp gateway.

The model's ``whatsapp_send_message`` tool goes through the MCP server like every tool; the
engine's own replies do not need the model's tool layer, so they skip that hop (the MCP child's
stdio round trip, its tool dispatch and its second HTTP client) and ``POST /api/send-message``
themselves: the same request the tool makes, with the same idempotency key and ``causationId``,
authenticated as the engine (only it may use those). The gateway sends a key once, so a call is
retried with the same key when the gateway is unreachable or answers 502/503/504; a 4xx is
``SendRefused`` with the gateway's own message (``permanent`` for the channel's refusal).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import msgspec
from opentelemetry.trace import SpanKind

from aspri import apikey
from aspri.config import Settings
from aspri.schemas.api import ReplyError, decode_reply
from aspri.telemetry.instruments import TOOL_CALLS, TOOL_ERRORS, tool_label
from aspri.telemetry.tracing import inject, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.agents")

SEND_TOOL = "whatsapp_send_message"
"""The tool the same send would be through MCP: its name labels the send's metrics."""
TIMEOUT = httpx.Timeout(30.0, connect=3.0)
"""A send may wait on the channel's pacing; a connect taking seconds means the gateway is down."""
RETRY_DELAYS_S = (0.1, 0.4)
RETRY_STATUSES = frozenset({502, 503, 504})


class SendRefused(Exception):
    """The gateway refused or failed the send; the text says why (its envelope's message).

    ``permanent``: the channel refused the message for good (the gateway's 422: e.g. outside
    the Cloud API's 24-hour window without a template). The gateway has recorded the send as
    failed and told the owner, so sending it again, or running the turn again, cannot help.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.code = code
        self.permanent = status == 422


class Outbound:
    """One keep-alive HTTP client to the WhatsApp gateway for the engine's own sends."""

    def __init__(self, settings: Settings) -> None:
        key = apikey.effective(settings)
        self.headers = {"X-API-Key": apikey.engine_credential(key)} if key else {}
        self.url = settings.whatsapp_url.rstrip("/") + "/api/send-message"
        self._label = tool_label(SEND_TOOL)
        # made now, not on the first send: its TLS context takes tens of milliseconds
        self._http = httpx.AsyncClient(timeout=TIMEOUT, headers=self.headers)

    @property
    def http(self) -> httpx.AsyncClient:
        """The client (a new one after ``close``: a worker's engine may run again)."""
        if self._http.is_closed:
            self._http = httpx.AsyncClient(timeout=TIMEOUT, headers=self.headers)
        return self._http

    async def close(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        target: str,
        text: str,
        key: str,
        cause: str,
        *,
        voice: bool = False,
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        """Send ``text`` to ``target`` once per ``key`` (``voice``: as a spoken voice note;
        ``reply_to``: the channel id of the message it answers, which the gateway quotes as
        ``REPLY_QUOTE`` says); the gateway's SentMessage (camelCase)."""
        body: dict[str, Any] = {
            "phoneNumber": target,
            "message": text,
            "idempotencyKey": key,
            "causationId": cause,
        }
        if voice:
            body["voice"] = True
        if reply_to:
            body["replyTo"] = reply_to
        TOOL_CALLS.labels(self._label).inc()
        with _tracer.start_as_current_span(
            "send message",
            kind=SpanKind.CLIENT,
            attributes={"messaging.system": "whatsapp", "aspri.idempotency_key": key},
        ):
            try:
                return await self._post(body, key)
            except Exception:
                TOOL_ERRORS.labels(self._label).inc()
                raise

    async def _post(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            headers = inject({"Idempotency-Key": key})  # traceparent and baggage when tracing
            try:
                response = await self.http.post(self.url, json=body, headers=headers)
            except httpx.TransportError as exc:
                problem = f"the WhatsApp gateway is unreachable ({type(exc).__name__})"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return _data(response)
                problem = f"the WhatsApp gateway answered HTTP {response.status_code}"
            if attempt == len(RETRY_DELAYS_S):
                raise SendRefused(problem)
            log.warning("send failed, retrying with the same key", extra={"error": problem})
            await asyncio.sleep(RETRY_DELAYS_S[attempt])
        raise AssertionError("unreachable")


def _data(response: httpx.Response) -> dict[str, Any]:
    try:
        envelope = decode_reply(response.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise SendRefused(
            f"the WhatsApp gateway answered HTTP {response.status_code} with a body that is "
            "not its API envelope"
        ) from None
    if response.is_success and envelope.success and isinstance(envelope.data, dict):
        return envelope.data
    error = envelope.error or ReplyError(message="no error message")
    raise SendRefused(
        error.message or f"the WhatsApp gateway refused the send ({error.code})",
        status=response.status_code,
        code=error.code,
    )

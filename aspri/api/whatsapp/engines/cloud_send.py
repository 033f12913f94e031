"""Sending through the Graph API: the 24-hour window, the template, and what to retry.

Meta lets a business send free text to a person only within 24 hours of their last message
(the customer-service window); after that only an approved template goes through. A refusal is
either transient — a rate limit (codes ``TRANSIENT_CODES``), a 5xx, a connection that never
reached Meta — and retried here with backoff, or permanent (``ChannelError.permanent``: the
gateway records the send as failed and tells the owner). A request that may have reached Meta
(a read timeout) is not retried here: Meta has no idempotency key, so a retry could send twice.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from aspri.api.whatsapp.channel import ChannelError
from aspri.schemas.status import OUTSIDE_WINDOW

log = logging.getLogger(__name__)

WINDOW_MS = 24 * 3600 * 1000
TRANSIENT_CODES = frozenset({4, 80007, 130429, 131048, 131056})
"""Graph API error codes of rate limits (app, account, throughput, spam rate, pair rate)."""
TEMPLATE_PARAM_MAX = 1024
_SPACE = re.compile(r"\s+")


def text_body(to: str, text: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": text},
    }


def audio_body(to: str, media_id: str) -> dict[str, Any]:
    """An uploaded OGG/Opus file as a voice note (``voice: true``: the play button, the
    microphone icon, WhatsApp's own transcript)."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "audio",
        "audio": {"id": media_id, "voice": True},
    }


def template_body(to: str, text: str, name: str, language: str) -> dict[str, Any]:
    """The template ``name`` with ``text`` as its one body parameter. Meta refuses a parameter
    with a newline, a tab or more than four spaces in a row, so whitespace is collapsed."""
    param = _SPACE.sub(" ", text).strip()[:TEMPLATE_PARAM_MAX]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": param}]}],
        },
    }


def window_closed(number: str, last_inbound_ms: int) -> ChannelError:
    """The refusal of a free-text send after the window closed, with no template to use."""
    if last_inbound_ms:
        closed = datetime.fromtimestamp((last_inbound_ms + WINDOW_MS) / 1000, UTC)
        since = f"closed at {closed:%Y-%m-%d %H:%M} UTC"
    else:
        since = "is not open: they have not written yet"
    reason = (
        f"{OUTSIDE_WINDOW}: +{number}'s window {since}; the Cloud API sends free text only "
        "within 24 hours of the person's last message (set WHATSAPP_CLOUD_TEMPLATE to reach "
        "them with a template)"
    )
    return ChannelError(reason, 502, permanent=True, code="outside_window", title=OUTSIDE_WINDOW)


def refusal(response: httpx.Response) -> ChannelError:
    """Meta's error answer as a ChannelError: 503 when worth retrying, else permanent."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = error.get("code"), error.get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = None, None
    reason = f"the Graph API refused the message ({status}, code {code}): {message}"
    if code is None:
        reason = f"the Graph API refused the message ({status})"
    if status >= 500 or code in TRANSIENT_CODES:
        return ChannelError(reason, 503, code=None if code is None else str(code), title=message)
    return ChannelError(
        reason,
        502,
        permanent=True,
        code=None if code is None else str(code),
        title=str(message)[:2000] if message else None,
    )


class _Unsure(ChannelError):
    """The request may have reached Meta: not retried."""


def _transient(exc: BaseException) -> bool:
    return (
        isinstance(exc, ChannelError)
        and not isinstance(exc, _Unsure)
        and exc.status == 503
        and not exc.permanent
    )


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], *, attempts: int, wait_s: float
) -> httpx.Response:
    """POST ``body``, retrying transient refusals; the answer of an accepted message."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=wait_s, max=wait_s * 8, jitter=wait_s),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            number = attempt.retry_state.attempt_number
            if number > 1:
                log.info("retrying a Graph API send", extra={"attempt": number})
            try:
                response = await client.post(path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise ChannelError(
                    f"the Graph API is unreachable ({type(exc).__name__})", 503
                ) from exc
            except httpx.HTTPError as exc:
                reason = f"the Graph API did not answer ({type(exc).__name__}); not retried: "
                raise _Unsure(reason + "the message may have been sent", 503) from exc
            if response.status_code >= 400:
                raise refusal(response)
            return response
    raise AssertionError("unreachable: tenacity reraises the last error")

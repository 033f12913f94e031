"""The one HTTP client the tools use to reach the WhatsApp and cron gateways.

Every failure becomes a ``GatewayError`` whose text is written for the model: a 4xx gives the
gateway's own envelope message (it names the field and what to fix), an unreachable gateway
names the service and its URL. A call is retried only when repeating it cannot do anything
twice: GETs, and writes that carry an idempotency key the gateway deduplicates on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import msgspec
from pydantic import TypeAdapter, ValidationError

from aspri import apikey
from aspri.config import Settings
from aspri.schemas.api import ReplyError, decode_reply

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT = httpx.Timeout(30.0, connect=3.0)
"""A send may wait on the channel's pacing; a connect taking seconds means the gateway is down."""
RETRY_DELAYS_S = (0.1, 0.4)
"""Pauses before the second and third attempt of an idempotent call."""
RETRY_STATUSES = frozenset({502, 503, 504})


class GatewayError(Exception):
    """A gateway call failed; ``str(error)`` is the text the model sees."""

    def __init__(self, text: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Service:
    name: str
    base_url: str


def path_segment(value: str) -> str:
    """``value`` quoted for one path segment; ``@`` and ``+`` of chat ids and numbers stay."""
    return quote(value, safe="@+")


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared client: keep-alive pool, timeouts, API key (trace context and baggage on
    every request when tracing is on: ``setup_tracing`` instruments httpx)."""
    key = apikey.effective(settings)
    headers = {"X-API-Key": key} if key else {}
    return httpx.AsyncClient(timeout=TIMEOUT, headers=headers)


class Gateways:
    """Calls to both gateways over one ``httpx.AsyncClient`` (owned by the caller)."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.whatsapp = Service("WhatsApp service", settings.whatsapp_url.rstrip("/"))
        self.cron = Service("cron service", settings.cronjob_url.rstrip("/"))

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one request and return the envelope's ``data``; raise ``GatewayError``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        idempotent = method == "GET" or idempotency_key is not None
        delays = RETRY_DELAYS_S if idempotent else ()
        url = service.base_url + path
        query = {k: v for k, v in (params or {}).items() if v is not None} or None
        for attempt in range(len(delays) + 1):
            try:
                response = await self.http.request(
                    method, url, params=query, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                error = _transport_error(service, exc)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return _data(service, method, path, response)
                error = _response_error(service, method, path, response)
            if attempt == len(delays):
                raise error
            log.warning(
                "gateway call failed, retrying",
                extra={"gateway": service.name, "path": path, "error": str(error)},
            )
            await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")


def _transport_error(service: Service, exc: httpx.TransportError) -> GatewayError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return GatewayError(
            f"the {service.name} at {service.base_url} did not answer in time; "
            "it may still have done the action, so check before repeating it"
        )
    return GatewayError(
        f"the {service.name} at {service.base_url} is unreachable "
        f"({type(exc).__name__}); it may be stopped, try again later"
    )


def _data(service: Service, method: str, path: str, response: httpx.Response) -> Any:
    if response.is_success:
        try:
            envelope = decode_reply(response.content)
        except msgspec.DecodeError:
            raise _not_envelope(service, method, path, response) from None
        if envelope.success:
            return envelope.data
    raise _response_error(service, method, path, response)


def _response_error(
    service: Service, method: str, path: str, response: httpx.Response
) -> GatewayError:
    try:
        envelope = decode_reply(response.content)
    except msgspec.DecodeError:
        return _not_envelope(service, method, path, response)
    error = envelope.error or ReplyError(message="no error message")
    status = response.status_code
    if 400 <= status < 500:
        text = error.message or f"the {service.name} refused the request ({error.code})"
    else:
        text = f"the {service.name} failed (HTTP {status}, {error.code}): {error.message}"
    return GatewayError(text, status=status, code=error.code)


def _not_envelope(
    service: Service, method: str, path: str, response: httpx.Response
) -> GatewayError:
    return GatewayError(
        f"the {service.name} at {service.base_url} answered {method} {path} with HTTP "
        f"{response.status_code} and a body that is not its API envelope; "
        "is another program listening on that port?",
        status=response.status_code,
    )


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def parse(kind: type[T], data: Any, service: Service) -> T:
    """``data`` from ``service`` as ``kind``; a gateway answering off-contract is a tool error."""
    try:
        value: T = _adapter(cast(Hashable, kind)).validate_python(data)
    except ValidationError as exc:
        raise GatewayError(
            f"the {service.name} answered with data this server does not understand "
            f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
        ) from None
    return value

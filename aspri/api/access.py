"""Who may call a gateway: the API key, the engine's credential, web-chat sessions, Host names.

Every request is checked before its handler runs (one ASGI middleware on both gateways):
- its ``Host`` must be a name this gateway is meant to be reached by (loopback, ``ASPRI_HOST``,
  the compose service names, ``ASPRI_PUBLIC_HOSTS``), else 421 — a page on another site cannot
  reach the gateway by DNS rebinding;
- a body must be ``application/json`` (415), so a cross-site form or ``text/plain`` post is
  never parsed; an upload route (``UPLOAD_OPT``, the web chat's files) also takes
  ``multipart/form-data``, but from a browser only with the page's own ``Origin`` (403);
- unless the route is public (``/health``, the OpenAPI page, the Cloud webhook, the login link),
  it must carry the API key (``X-API-Key`` or ``Authorization: Bearer``), the engine's derived
  credential, or — on the WhatsApp gateway — a web-chat session cookie; else 401;
- only the engine may use the idempotency-key namespaces it derives its own keys in.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from aspri import apikey
from aspri.api.common import ApiError
from aspri.api.limits import UPLOAD_OPT
from aspri.config import Settings

log = logging.getLogger(__name__)

Caller = Literal["engine", "owner"]
"""``engine``: the engine's credential (or any caller when auth is off); ``owner``: the key or a
web-chat session — everything but the engine's reserved namespaces."""

COOKIE = "aspri_session"
CALLER = "aspri.caller"
"""Where the middleware leaves the caller in the request's state (None: not authenticated)."""

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SERVICE_HOSTS = frozenset({"whatsapp", "cron", "cronjob"})
"""The names compose gives the gateways on its network."""
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
"""Bind-all addresses: not names a client would use."""
RESERVED_PREFIXES = ("engine:", "cron:")
"""Idempotency keys the engine derives from event ids; another caller could take them over."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PUBLIC = "public"
"""``opt`` key of a route handler that needs no credential (its Host is still checked)."""

SECURITY_SCHEMES = {
    "apiKey": SecurityScheme(
        type="apiKey",
        name="X-API-Key",
        security_scheme_in="header",
        description="The API key (ASPRI_API_KEY, else the key file in ASPRI_DATA_DIR).",
    ),
    "bearer": SecurityScheme(
        type="http", scheme="bearer", description="The same API key as a bearer token."
    ),
}
SECURITY: list[SecurityRequirement] = [{"apiKey": []}, {"bearer": []}]


def openapi_components() -> Components:
    return Components(security_schemes=dict(SECURITY_SCHEMES))


@dataclass(frozen=True)
class Access:
    """What a gateway accepts. ``key`` None means ``ASPRI_API_KEY=off`` (everyone is trusted)."""

    key: str | None
    hosts: frozenset[str]
    cookies: bool = False
    """Accept web-chat session cookies (the WhatsApp gateway's local engine)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, cookies: bool = False) -> Access:
        hosts = set(LOCAL_HOSTS | SERVICE_HOSTS)
        if settings.host.strip().lower() not in ANY_ADDRESS:
            hosts.add(hostname(settings.host))
        hosts.update(hostname(h) for h in settings.public_hosts)
        return cls(key=apikey.effective(settings), hosts=frozenset(hosts), cookies=cookies)

    def caller(self, headers: Headers) -> Caller | None:
        """Who presented which credential; None when none is valid."""
        if self.key is None:
            return "engine"
        presented = headers.get("x-api-key")
        if presented is None:
            scheme, _, value = headers.get("authorization", "").partition(" ")
            presented = value.strip() if scheme.lower() == "bearer" else None
        if presented:
            given = presented.encode()
            if hmac.compare_digest(given, apikey.engine_credential(self.key).encode()):
                return "engine"
            if hmac.compare_digest(given, self.key.encode()):
                return "owner"
            return None
        if self.cookies:
            session = _cookie(headers.get("cookie"), COOKIE)
            if session and apikey.check_session_cookie(self.key, session):
                return "owner"
        return None


def hostname(host: str) -> str:
    """``host`` of a Host header without port, brackets or trailing dot, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_multipart(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == "multipart/form-data"


def _same_origin(headers: Headers) -> None:
    """A browser names the page a request comes from: a form on another site must not post a
    file with the web chat's cookie (non-browser clients send no ``Origin``)."""
    origin = headers.get("origin")
    if origin is None:
        return
    if urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        raise ApiError(403, "cross_origin", "Origin: a page of another site may not upload here")


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


def reserved(key: str) -> bool:
    return key.startswith(RESERVED_PREFIXES)


def check_reserved(request: Request[Any, Any, Any], field: str, key: str | None) -> None:
    """403 when a caller other than the engine uses one of the engine's idempotency keys."""
    if key is not None and reserved(key) and caller_of(request) != "engine":
        raise _reserved(field)


def _reserved(field: str) -> ApiError:
    return ApiError(
        403,
        "reserved_idempotency_key",
        f"{field}: keys starting with {' or '.join(RESERVED_PREFIXES)} belong to the engine; "
        "choose another key",
    )


def caller_of(request: Request[Any, Any, Any]) -> Caller | None:
    value: Caller | None = request.scope.get("state", {}).get(CALLER)
    return value


class AccessMiddleware(ASGIMiddleware):
    """Host, media type and credential checks for every HTTP request (see the module doc)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, access: Access) -> None:
        self.access = access

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = Headers.from_scope(scope)
        host = hostname(headers.get("host", ""))
        if host not in self.access.hosts:
            log.warning(
                "request for a host this gateway does not serve refused",
                extra={"host": host[:100], "path": scope["path"]},
            )
            raise ApiError(
                421,
                "unknown_host",
                f"Host {host[:100]!r} is not a name of this service; "
                "add it to ASPRI_PUBLIC_HOSTS if it is yours",
            )
        method = scope.get("method", "GET")
        content_type = headers.get("content-type")
        if method in BODY_METHODS and _has_body(headers) and not _is_json(content_type):
            upload = scope["route_handler"].opt.get(UPLOAD_OPT, False)
            if not (upload and _is_multipart(content_type)):
                raise ApiError(
                    415, "unsupported_media_type", "Content-Type: send the body as application/json"
                )
            _same_origin(headers)
        caller = self.access.caller(headers)
        scope.setdefault("state", {})[CALLER] = caller
        public = scope["route_handler"].opt.get(PUBLIC) or scope["path"].startswith("/schema")
        if caller is None and not public:
            raise ApiError(
                401,
                "unauthorized",
                "send the API key as X-API-Key or Authorization: Bearer "
                "(ASPRI_API_KEY, else the key file in ASPRI_DATA_DIR)",
                headers={"WWW-Authenticate": 'Bearer realm="aspri"'},
            )
        key = headers.get("idempotency-key")
        if key is not None and reserved(key) and caller != "engine" and not public:
            raise _reserved("Idempotency-Key")
        await next_app(scope, receive, send)

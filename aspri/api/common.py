"""What both Litestar gateways share: the response envelope, error handling, OpenAPI, tracing.

Every response is ``{"success": true, "data": ...}`` or
``{"success": false, "error": {"code": ..., "message": ...}}`` with the right HTTP status, and
no request can produce a bare 500: unexpected errors are logged with their trace id and answered
with the envelope. The OpenAPI UI and its assets are served by the gateway itself
(``openapi_ui.py``), so it renders without internet access.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.types import ControllerRouterHandler, LifespanHook
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.api import spec
from aspri.api.openapi_ui import swagger_assets, swagger_ui
from aspri.schemas.api import ErrorBody, Failure
from aspri.telemetry import metrics, tracing

if TYPE_CHECKING:
    from aspri.api.access import Access

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    421: "unknown_host",
    422: "unprocessable",
    429: "rate_limited",
    502: "bad_gateway",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An error the client can act on; rendered as the envelope with ``code`` and ``message``."""

    def __init__(
        self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code


RETRY_AFTER = {"Retry-After": "1"}
"""Sent with every 503: the event log usually comes back within a second or two."""


def failure(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Failure]:
    return Response(
        Failure(error=ErrorBody(code=code, message=message)),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers or (RETRY_AFTER if status == 503 else None),
    )


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or ""
            parts.append(f"{key}: {item.get('message', '')}".strip(": "))
    detail = exc.detail or "invalid request"
    return f"{detail} ({'; '.join(parts)})" if parts else detail


def _on_http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Failure]:
    status = exc.status_code
    if isinstance(exc, ApiError):
        return failure(status, exc.code, exc.detail, exc.headers)
    if isinstance(exc, ValidationException):
        return failure(400, "invalid_request", _validation_message(exc))
    # Litestar's own errors carry headers too (a 405 says which methods are allowed).
    return failure(status, _STATUS_CODES.get(status, "error"), exc.detail, exc.headers)


def _on_log_unavailable(request: Request[Any, Any, Any], exc: RedisError) -> Response[Failure]:
    log.warning("event log unavailable", extra={"path": request.url.path, "error": str(exc)})
    return failure(503, "unavailable", "the event log (Redis) is unavailable; retry shortly")


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Failure]:
    log.exception("unhandled error", extra={"path": request.url.path})
    return failure(500, "internal_error", "internal error; see the server log for details")


def _tracing_plugins() -> list[OpenTelemetryPlugin]:
    """Litestar's OpenTelemetry middleware, only when this process exports traces (it costs
    ~0.7 ms per request even when spans go nowhere)."""
    if not tracing.enabled():
        return []
    config = OpenTelemetryConfig(
        exclude=["/health", "/schema", "/metrics"],
        exclude_spans=["receive", "send"],  # one server span per request is enough
    )
    return [OpenTelemetryPlugin(config)]


def create_gateway(
    *,
    title: str,
    description: str,
    route_handlers: Sequence[ControllerRouterHandler],
    on_startup: Sequence[LifespanHook] = (),
    on_shutdown: Sequence[LifespanHook] = (),
    lifespan: Sequence[Any] = (),
    request_max_body_size: int = 1024 * 1024,
    upload_max_body_size: int | None = None,
    state: dict[str, Any] | None = None,
    redis: Redis | None = None,
    watched: Sequence[str] = metrics.WATCHED,
    access: Access,
    links: Sequence[spec.Link] = (),
) -> Litestar:
    """A Litestar app with the envelope, ``access`` checked on every request (api/access.py),
    OpenAPI at ``/schema`` (UI at ``/schema/swagger``) and, given the event log's ``redis``,
    Prometheus metrics of its ``watched`` streams at ``/metrics`` (behind the key, like the
    API)."""
    from aspri.api.access import SECURITY, AccessMiddleware, openapi_components
    from aspri.api.limits import BodyLimits

    openapi = OpenAPIConfig(
        title=title,
        version="1",
        description=description,
        path="/schema",
        components=openapi_components(),
        security=SECURITY,
        render_plugins=[swagger_ui()],
    )
    extra: list[ControllerRouterHandler] = []
    if redis is not None:
        log_redis = redis

        @get("/metrics", include_in_schema=False, media_type=metrics.CONTENT_TYPE)
        async def prometheus() -> bytes:
            return await metrics.render(log_redis, watched)

        extra.append(prometheus)
    app = Litestar(
        route_handlers=[
            *route_handlers,
            *extra,
            swagger_assets(),
        ],
        openapi_config=openapi,
        middleware=[
            AccessMiddleware(access),
            BodyLimits(request_max_body_size, upload_max_body_size),
        ],
        exception_handlers={
            HTTPException: _on_http_error,
            RedisError: _on_log_unavailable,
            Exception: _on_unexpected,
        },
        plugins=_tracing_plugins(),
        logging_config=None,  # keep aspri's structured logging (telemetry/logs.py)
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        lifespan=list(lifespan),
        request_max_body_size=request_max_body_size,
        state=State(state or {}),
    )
    # The served document is built once and cached by Litestar's OpenAPI plugin: complete it.
    spec.complete(app.plugins.get(OpenAPIPlugin).provide_openapi_schema(), list(links))
    return app

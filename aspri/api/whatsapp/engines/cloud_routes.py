"""Meta's webhook endpoints for the ``cloud`` engine: the verification handshake and delivery."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from aspri.api.common import ApiError
from aspri.api.whatsapp.engines.cloud import CloudChannel, InvalidWebhook, WebhookReceipt
from aspri.schemas.api import Success

log = logging.getLogger(__name__)


@get(
    "/webhooks/whatsapp",
    media_type=MediaType.TEXT,
    tags=["cloud"],
    opt={"public": True},
    security=[{}],
)
async def verify_webhook(
    cloud: NamedDependency[CloudChannel],
    mode: Annotated[str | None, QueryParameter(name="hub.mode")] = None,
    token: Annotated[str | None, QueryParameter(name="hub.verify_token")] = None,
    challenge: Annotated[str | None, QueryParameter(name="hub.challenge")] = None,
) -> str:
    """Meta calls this once when the webhook is configured; echo the challenge if the token fits."""
    if not cloud.verify(mode, token):
        log.warning("webhook verification refused")
        reason = "hub.mode must be 'subscribe' and hub.verify_token must match"
        raise ApiError(403, "forbidden", reason)
    if not challenge:
        raise ApiError(400, "invalid_request", "hub.challenge is missing")
    return challenge


@post(
    "/webhooks/whatsapp",
    status_code=200,
    tags=["cloud"],
    opt={"public": True},
    security=[{}],
)
async def receive_webhook(
    request: Request[Any, Any, Any], cloud: NamedDependency[CloudChannel]
) -> Success[WebhookReceipt]:
    """Messages and statuses from Meta; the signature is checked before the body is parsed."""
    body = await request.body()
    if not cloud.signature_ok(body, request.headers.get("x-hub-signature-256")):
        log.warning("webhook with a missing or wrong signature refused")
        reason = "X-Hub-Signature-256 is missing or does not match the body"
        raise ApiError(401, "bad_signature", reason)
    try:
        receipt = await cloud.handle(body)
    except InvalidWebhook as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    return Success(data=receipt)

"""A local stand-in for Meta's Graph API (which a test machine cannot reach): a real HTTP server
on a free port that records every ``POST /{phone-number-id}/messages`` and answers like the
Graph API does (documented success and error bodies), and serves media as Meta documents it:
``GET /{media-id}`` answers a short-lived URL, ``GET`` of that URL the bytes, both only with
the access token as bearer (401 otherwise). Uploads (``POST /{phone-number-id}/media``,
multipart with ``file``, ``type`` and ``messaging_product``) are kept and answered with a new
media id, with the same bearer check."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from tests.helpers import serve_asgi


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GraphRecorder:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    fail_status: int | None = None
    """When set, answer with Meta's error body and this status."""
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    """Answers for the next sends, first one first: (HTTP status, Graph error code, message),
    as Meta words them (e.g. ``(400, 130429, "Rate limit hit")``); then ``fail_status``."""
    token: str = "EAAtoken"
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """media id → (bytes, declared mime type)."""
    media_requests: list[Recorded] = field(default_factory=list)
    downloads: int = 0
    media_failures: list[int] = field(default_factory=list)
    """HTTP statuses for the next ``GET /{media-id}``, first one first (an outage: 503...)."""
    media_fail_status: int | None = None
    """When set, every ``GET /{media-id}`` answers this status (a Graph API that stays down)."""
    hold: asyncio.Event | None = None
    """When set, the bytes are served only once it is set (a slow download)."""
    uploads: dict[str, Upload] = field(default_factory=dict)
    """media id → what was uploaded under it."""

    def sends(self) -> list[Any]:
        """The messages sent (not read receipts), in order."""
        return [r.body for r in self.requests if r.body.get("status") != "read"]

    def receipts(self, message_id: str) -> list[Any]:
        """The read receipts (typing indicators) sent for ``message_id``, in order."""
        return [
            r.body
            for r in self.requests
            if r.body.get("status") == "read" and r.body.get("message_id") == message_id
        ]

    def media_gets(self, media_id: str) -> int:
        """How many requests touched ``media_id``: its URL lookups and its byte downloads."""
        return sum(1 for r in self.media_requests if r.path.endswith(f"/{media_id}"))


@dataclass
class Upload:
    data: bytes
    mime: str | None
    """The ``type`` field."""
    file_type: str | None
    """The file part's own content type."""
    messaging_product: str | None


def _app(recorder: GraphRecorder) -> Litestar:
    @post("/{version:str}/{number_id:str}/messages", status_code=200)
    async def messages(request: Request[Any, Any, Any], number_id: str) -> Response[Any]:
        body = await request.json()
        recorder.requests.append(Recorded(request.url.path, dict(request.headers), body))
        if body.get("status") == "read":  # a read receipt (with a typing indicator or not)
            return Response({"success": True})
        if recorder.failures:
            status, code, message = recorder.failures.pop(0)
            error = {
                "error": {
                    "message": message,
                    "type": "OAuthException",
                    "code": code,
                    "error_data": {"messaging_product": "whatsapp", "details": message},
                    "fbtrace_id": "AbCdEf456",
                }
            }
            return Response(error, status_code=status)
        if recorder.fail_status is not None:
            error = {
                "error": {
                    "message": "(#131030) Recipient phone number not in allowed list",
                    "type": "OAuthException",
                    "code": 131030,
                    "error_data": {"messaging_product": "whatsapp", "details": "not allowed"},
                    "fbtrace_id": "AbCdEf123",
                }
            }
            return Response(error, status_code=recorder.fail_status)
        wamid = f"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI{len(recorder.requests):04d}"
        return Response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    def authorized(request: Request[Any, Any, Any]) -> bool:
        recorder.media_requests.append(Recorded(request.url.path, dict(request.headers), None))
        return request.headers.get("authorization") == f"Bearer {recorder.token}"

    oauth_error = {"error": {"message": "Invalid OAuth access token.", "code": 190}}

    @post("/{version:str}/{number_id:str}/media", status_code=200)
    async def upload(request: Request[Any, Any, Any], number_id: FromPath[str]) -> Response[Any]:
        if not authorized(request):
            return Response(oauth_error, status_code=401)
        form = await request.form()
        file = form.get("file")
        if file is None or isinstance(file, str):
            error = {"error": {"message": "(#100) The parameter file is required.", "code": 100}}
            return Response(error, status_code=400)
        media_id = f"{len(recorder.uploads) + 1:016d}"
        recorder.uploads[media_id] = Upload(
            data=await file.read(),
            mime=form.get("type"),
            file_type=file.content_type,
            messaging_product=form.get("messaging_product"),
        )
        return Response({"id": media_id})

    @get("/{version:str}/{media_id:str}")
    async def media_url(request: Request[Any, Any, Any], media_id: FromPath[str]) -> Response[Any]:
        if not authorized(request):
            return Response(oauth_error, status_code=401)
        status = recorder.media_failures.pop(0) if recorder.media_failures else None
        status = status or recorder.media_fail_status
        if status is not None:
            error = {"error": {"message": "Service temporarily unavailable", "code": 2}}
            return Response(error, status_code=status)
        if media_id not in recorder.media:
            error = {"error": {"message": "Unsupported get request.", "code": 100}}
            return Response(error, status_code=400)
        data, mime = recorder.media[media_id]
        return Response(
            {
                "messaging_product": "whatsapp",
                "url": f"{recorder.url.rsplit('/', 1)[0]}/lookaside/{media_id}?ext=1&hash=x",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    @get("/lookaside/{media_id:str}")
    async def media_bytes(
        request: Request[Any, Any, Any], media_id: FromPath[str]
    ) -> Response[Any]:
        if not authorized(request):
            return Response(oauth_error, status_code=401)
        if recorder.hold is not None:
            await recorder.hold.wait()
        recorder.downloads += 1
        data, mime = recorder.media[media_id]
        return Response(data, media_type=mime)

    return Litestar([messages, upload, media_url, media_bytes])


@asynccontextmanager
async def graph_recorder() -> AsyncIterator[GraphRecorder]:
    recorder = GraphRecorder()
    async with serve_asgi(_app(recorder), lifespan="off") as base:
        recorder.url = f"{base}/v21.0"
        yield recorder

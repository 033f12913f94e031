"""A local stand-in for Meta's Graph API (which a test machine cannot reach): a real HTTP server
on a free port that records every ``POST /{phone-number-id}/messages`` and answers like the
Graph API does (documented success and error bodies)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post

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


def _app(recorder: GraphRecorder) -> Litestar:
    @post("/{version:str}/{number_id:str}/messages", status_code=200)
    async def messages(request: Request[Any, Any, Any], number_id: str) -> Response[Any]:
        body = await request.json()
        recorder.requests.append(Recorded(request.url.path, dict(request.headers), body))
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

    return Litestar([messages])


@asynccontextmanager
async def graph_recorder() -> AsyncIterator[GraphRecorder]:
    recorder = GraphRecorder()
    async with serve_asgi(_app(recorder), lifespan="off") as base:
        recorder.url = f"{base}/v21.0"
        yield recorder

"""The engine's own sends straight to the gateway: the tool's request, the engine's credential,
retried with the same key when the gateway is unavailable, a refusal in the gateway's words.

A stand-in gateway records what reached it; the real gateway is in tests/agents/engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, Response, post
from litestar.params import JSONBody

from aspri import apikey
from aspri.agents.outbound import Outbound, SendRefused
from aspri.config import Settings
from tests.helpers import serve_asgi

KEY = "outbound-test-key"


def gateway(answers: list[tuple[int, dict[str, Any]]], seen: list[dict[str, Any]]) -> Litestar:
    @post("/api/send-message")
    async def send(
        request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]
    ) -> Response[Any]:
        seen.append(
            {
                "body": data,
                "key": request.headers.get("idempotency-key"),
                "auth": request.headers.get("x-api-key"),
            }
        )
        status, body = answers.pop(0)
        return Response(body, status_code=status)

    return Litestar([send], debug=False)


SENT = {"success": True, "data": {"messageId": "m1", "chatId": "62811@c.us", "eventId": "e1"}}


async def test_a_send_is_the_tools_request_retried_with_its_key(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    unavailable = {"success": False, "error": {"code": "channel_unavailable", "message": "down"}}
    app = gateway([(503, unavailable), (200, SENT)], seen)
    async with serve_asgi(app) as url:
        outbound = Outbound(Settings(data_dir=tmp_path, api_key=KEY, whatsapp_url=url))
        try:
            sent = await outbound.send("62811", "hello", "engine:e0:reply", "e0", voice=True)
        finally:
            await outbound.close()
    assert sent["messageId"] == "m1"
    assert len(seen) == 2
    for request in seen:
        assert request["key"] == "engine:e0:reply"
        assert request["auth"] == apikey.engine_credential(KEY)  # the engine's, not the key
        assert request["body"] == {
            "phoneNumber": "62811",
            "message": "hello",
            "idempotencyKey": "engine:e0:reply",
            "causationId": "e0",
            "voice": True,
        }


async def test_a_refusal_is_not_retried_and_says_why(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    refused = {
        "success": False,
        "error": {"code": "invalid_phone_number", "message": "phoneNumber: not a number"},
    }
    async with serve_asgi(gateway([(400, refused)], seen)) as url:
        outbound = Outbound(Settings(data_dir=tmp_path, api_key=KEY, whatsapp_url=url))
        try:
            with pytest.raises(SendRefused, match="phoneNumber: not a number"):
                await outbound.send("nobody", "hello", "engine:e1:reply", "e1")
        finally:
            await outbound.close()
    assert len(seen) == 1
    assert "voice" not in seen[0]["body"]

"""HTTP-layer limits on a real uvicorn server: JSON depth, slow bodies, slow headers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from aspri.api import limits
from aspri.api.limits import MAX_JSON_DEPTH, json_depth
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import API_KEY


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    deep = b"[" * 40 + b"]" * 40
    assert json_depth(deep) == 40
    assert json_depth(b'["' + b"[" * 100 + b'"]') == 1
    assert json_depth(b'["\\"' + b"[" * 100 + b'"]') == 1  # an escaped quote stays in the string
    assert json_depth(b"[]" * 1000) == 1


async def test_deep_json_is_a_400_naming_the_problem(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        for depth in (MAX_JSON_DEPTH + 1, 20_000):
            body = b'{"from": "6281234567890", "text": ' + b"[" * depth + b"]" * depth + b"}"
            r = await gw.client.post(
                "/api/local/messages", content=body, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "too_deeply_nested"
            assert f"nested {depth + 1} levels" in r.json()["error"]["message"]  # + the object
        nested = {"phoneNumber": "6281234567890", "message": "ok"}
        assert (await gw.client.post("/api/send-message", json=nested)).status_code == 200


async def _raw(port: int, request: bytes) -> tuple[bytes, float]:
    """Send ``request`` (possibly incomplete) and read until the server closes: the answer and
    how long the server held the connection."""
    began = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer, time.monotonic() - began


async def test_a_body_that_never_arrives_times_out(
    serve_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "BODY_IDLE_TIMEOUT_S", 0.5)
    async with serve_gateway() as gw:
        port = gw.client.base_url.port
        assert port is not None
        head = (
            "POST /api/local/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        answer, held = await _raw(port, head.encode() + b'{"from": "62812')
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
        assert held < 10
        assert await gw.stream("whatsapp:messages") == []


async def test_headers_that_never_end_time_out(
    serve_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits.TimedHttpProtocol, "header_timeout_s", 0.5)
    async with serve_gateway() as gw:
        port = gw.client.base_url.port
        assert port is not None
        for opening in (b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "):
            answer, held = await _raw(port, opening)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert held < 10
        # an ordinary request on the same server is not affected
        assert (await gw.client.get("/health")).status_code == 200

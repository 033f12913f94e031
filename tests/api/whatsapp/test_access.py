"""The WhatsApp gateway only answers its owner: key, engine credential, web-chat cookie, Host,
media type (issue 9, items 1, 2 and the idempotency takeover of item 4)."""

from __future__ import annotations

import time

import httpx

from aspri.apikey import engine_credential, login_token
from aspri.streams import keys
from tests.api.routes import routes
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import API_KEY, AUTH, ENGINE_AUTH

ALICE = "6281234567890@c.us"
WRONG = {"X-API-Key": "not-the-key"}


async def test_every_route_needs_the_key_but_health(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        table = routes(gw.app)
        assert ("GET", "/health", True) in table and ("GET", "/metrics", False) in table
        assert ("POST", "/api/send-message", False) in table
        anonymous = httpx.AsyncClient(transport=gw.client._transport, base_url="http://127.0.0.1")
        async with anonymous:
            for method, path, public in table:
                if public or path == "/api/local/events":  # the stream: see the SSE test
                    continue
                for headers in ({}, WRONG, {"Authorization": "Bearer not-the-key"}):
                    r = await anonymous.request(method, path, headers=headers, json={})
                    assert r.status_code == 401, (method, path, headers, r.text)
                    assert r.json()["error"]["code"] == "unauthorized"
                    assert r.headers["www-authenticate"].startswith("Bearer")
                for good in (AUTH, {"Authorization": f"Bearer {API_KEY}"}, ENGINE_AUTH):
                    r = await anonymous.request(method, path, headers=good, json={})
                    assert r.status_code not in (401, 403), (method, path, good, r.text)
            assert (await anonymous.get("/health")).status_code == 200
            assert (await anonymous.get("/schema/openapi.json")).status_code == 200
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []  # nothing got through


async def test_the_openapi_spec_declares_both_schemes(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        spec = (await gw.client.get("/schema/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
        "description": schemes["apiKey"]["description"],
    }
    assert schemes["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"apiKey": []}, {"bearer": []}]
    assert spec["paths"]["/health"]["get"]["security"] == [{}]
    # errors are documented as the envelope the gateway sends, not Litestar's own shape
    failure = {"$ref": "#/components/schemas/Failure"}
    chats = spec["paths"]["/api/chats"]["get"]["responses"]
    for status in ("400", "401", "415", "421", "4XX", "5XX"):
        assert chats[status]["content"]["application/json"]["schema"] == failure, status
    assert "401" not in spec["paths"]["/health"]["get"]["responses"]
    assert "error" in spec["components"]["schemas"]["Failure"]["properties"]
    send = spec["paths"]["/api/send-message"]["post"]
    assert send["responses"]["200"]["links"]  # a chat written to leads to its history
    body = spec["components"]["schemas"]["SendMessageRequest"]["properties"]
    assert body["phoneNumber"]["format"] == "phone"
    events = spec["paths"]["/api/local/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]


async def test_a_foreign_host_is_refused_and_public_hosts_are_served(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(public_hosts=("bot.example.org",)) as gw:
        for host in ("evil.example.com", "127.0.0.1.nip.io", "localhost.evil.com"):
            r = await gw.client.get("/api/chats", headers={"Host": host})
            assert r.status_code == 421, host
            assert r.json()["error"]["code"] == "unknown_host"
            assert (await gw.client.get("/health", headers={"Host": host})).status_code == 421
        for host in (
            "localhost:3001",
            "127.0.0.1",
            "[::1]:3001",
            "whatsapp:3001",
            "BOT.example.org",
        ):
            r = await gw.client.get("/api/chats", headers={"Host": host})
            assert r.status_code == 200, host


async def test_bodies_must_be_json(open_gateway: GatewayFactory) -> None:
    """A page on any site can post text/plain without a preflight: it is never parsed."""
    async with open_gateway() as gw:
        body = b'{"from": "6281234567890", "text": "from a web page"}'
        for media in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": media} if media else {}
            r = await gw.client.post("/api/local/messages", content=body, headers=headers)
            assert r.status_code == 415, media
            assert r.json()["error"]["code"] == "unsupported_media_type"
        ok = await gw.client.post(
            "/api/local/messages",
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert ok.status_code == 202
        assert len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 1


async def test_a_caller_cannot_take_over_the_engines_reply(open_gateway: GatewayFactory) -> None:
    """The attack of issue 9: the eventId is visible on the live stream, so a caller could send
    with the engine's key for it first; and causationId would mark the message answered."""
    async with open_gateway() as gw:

        async def sent() -> list[str]:
            chat = await gw.stream(keys.chat(ALICE))
            return [e.data.body for e in chat if e.data.from_me]

        said = await gw.client.post(
            "/api/local/messages", json={"from": "6281234567890", "text": "hi"}
        )
        event_id = said.json()["data"]["eventId"]
        attack = {"phoneNumber": ALICE, "message": "pwned"}
        refused = [
            await gw.client.post(
                "/api/send-message", json=attack | {"idempotencyKey": f"engine:{event_id}:reply"}
            ),
            await gw.client.post(
                "/api/send-message",
                json=attack,
                headers={"Idempotency-Key": f"engine:{event_id}:reply"},
            ),
            await gw.client.post("/api/send-message", json=attack | {"idempotencyKey": "cron:j:1"}),
            await gw.client.post("/api/send-message", json=attack | {"causationId": event_id}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert [r.json()["error"]["code"] for r in refused] == [
            "reserved_idempotency_key",
            "reserved_idempotency_key",
            "reserved_idempotency_key",
            "reserved_field",
        ]
        assert await sent() == []
        reply = {
            "phoneNumber": ALICE,
            "message": "hello Alice",
            "idempotencyKey": f"engine:{event_id}:reply",
            "causationId": event_id,
        }
        engine = await gw.client.post("/api/send-message", json=reply, headers=ENGINE_AUTH)
        assert engine.status_code == 200 and engine.json()["data"]["duplicate"] is False
        assert await sent() == ["hello Alice"]
        mine = await gw.client.post(
            "/api/send-message", json={**attack, "message": "hi", "idempotencyKey": "script-1"}
        )
        assert mine.status_code == 200  # any other key is the caller's own


async def test_web_chat_sign_in_with_a_one_time_link(serve_gateway: GatewayFactory) -> None:
    async with serve_gateway() as gw:
        base = str(gw.client.base_url)
        async with httpx.AsyncClient(base_url=base) as browser:
            page = await browser.get("/chat")
            assert page.status_code == 401 and "aspri link" in page.text
            assert (await browser.get("/api/chats")).status_code == 401
            link = f"/chat/login?token={login_token(API_KEY)}"
            signed_in = await browser.get(link)
            assert signed_in.status_code in (302, 303) and signed_in.headers["location"] == "/chat"
            cookie = signed_in.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
            assert (await browser.get("/chat")).status_code == 200
            assert (await browser.get("/api/chats")).status_code == 200
            said = await browser.post(
                "/api/local/messages", json={"from": "6281234567890", "text": "typed"}
            )
            assert said.status_code == 202
            async with browser.stream("GET", "/api/local/events") as live:
                assert live.status_code == 200
                assert live.headers["content-type"].startswith("text/event-stream")
        async with httpx.AsyncClient(base_url=base) as other:
            again = await other.get(link)
            assert again.status_code == 401 and "already used" in again.text
            expired = login_token(API_KEY, now=time.time() - 3600)
            assert (await other.get(f"/chat/login?token={expired}")).status_code == 401
            forged = login_token("another-key")
            assert (await other.get(f"/chat/login?token={forged}")).status_code == 401
            assert (await other.get("/chat/login?token=garbage")).status_code == 401
            other.cookies.set("aspri_session", "99999999999.forged")
            assert (await other.get("/api/chats")).status_code == 401
            async with other.stream("GET", "/api/local/events") as live:
                assert live.status_code == 401
            # the key itself also opens the stream (API clients, the bench)
            async with other.stream("GET", "/api/local/events", headers=AUTH) as live:
                assert live.status_code == 200


async def test_the_engine_credential_is_derived_not_the_key() -> None:
    assert engine_credential(API_KEY) != API_KEY
    assert engine_credential(API_KEY) == engine_credential(API_KEY)
    assert engine_credential("other") != engine_credential(API_KEY)


async def test_off_opens_the_gateway_but_keeps_host_and_media_checks(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(api_key="off") as gw:
        anonymous = httpx.AsyncClient(transport=gw.client._transport, base_url="http://127.0.0.1")
        async with anonymous:
            assert (await anonymous.get("/api/chats")).status_code == 200
            assert (await anonymous.get("/chat")).status_code == 200
            r = await anonymous.get("/api/chats", headers={"Host": "evil.example.com"})
            assert r.status_code == 421
            text = await anonymous.post(
                "/api/local/messages", content=b"{}", headers={"Content-Type": "text/plain"}
            )
            assert text.status_code == 415

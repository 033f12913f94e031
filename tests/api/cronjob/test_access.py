"""The cron gateway only answers its owner: every route but /health needs the key."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from aspri.api.access import Access
from aspri.api.cronjob.app import create_app
from aspri.apikey import session_cookie
from aspri.config import Settings
from tests.api.cronjob.conftest import gateway
from tests.api.routes import routes
from tests.helpers import API_KEY, AUTH, ENGINE_AUTH

JOB = {"name": "n", "schedule": "0 8 * * *", "payload": {"chatId": "1@c.us", "message": "hi"}}


async def test_every_route_needs_the_key_but_health(redis_url: str, redis: Redis) -> None:
    app = create_app(redis, access=Access.from_settings(Settings(api_key=API_KEY)))
    table = routes(app)
    assert ("GET", "/health", True) in table and ("POST", "/api/jobs", False) in table
    assert ("GET", "/metrics", False) in table
    async with gateway(redis_url, headers={}) as anonymous:
        for method, path, public in table:
            if public:
                continue
            wrong = (
                {},
                {"X-API-Key": "nope"},
                {"Authorization": f"Basic {API_KEY}"},
                {"Cookie": f"aspri_session={session_cookie(API_KEY)}"},  # the web chat's
            )
            for headers in wrong:
                r = await anonymous.request(method, path, headers=headers, json=JOB)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
            for good in (AUTH, {"Authorization": f"Bearer {API_KEY}"}, ENGINE_AUTH):
                r = await anonymous.request(method, path, headers=good, json=JOB)
                assert r.status_code not in (401, 403), (method, path, good, r.text)
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/health", headers={"Host": "evil.test"})).status_code == 421


async def test_only_the_engine_may_use_its_idempotency_keys(api: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "engine:0190-event:remind"}
    refused = await api.post("/api/jobs", json=JOB, headers=key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "reserved_idempotency_key"
    assert (await api.get("/api/jobs")).json()["data"]["jobs"] == []
    engine = await api.post("/api/jobs", json=JOB, headers=key | ENGINE_AUTH)
    assert engine.status_code == 201, engine.text
    mine = await api.post("/api/jobs", json=JOB, headers={"Idempotency-Key": "my-script-1"})
    assert mine.status_code == 201


async def test_text_plain_is_not_parsed(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/jobs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415

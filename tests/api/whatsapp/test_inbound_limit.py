"""The per-sender inbound rate limit: a flood is recorded in full, only the allowed part is
handed to the engine, and the sender gets one "slow down" notice."""

from __future__ import annotations

from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import SLOW_DOWN
from aspri.streams import keys
from aspri.telemetry.metrics import INBOUND_THROTTLED
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import wait_until

FLOODER, OTHER = "6281100000001", "6281100000002"


async def test_a_flood_is_recorded_but_only_the_burst_reaches_the_engine(
    open_gateway: GatewayFactory,
) -> None:
    counted = INBOUND_THROTTLED._value.get()
    async with open_gateway(inbound_rate_per_minute=1, inbound_burst=10) as gw:
        answers = []
        for n in range(25):
            response = await gw.client.post(
                "/api/local/messages", json={"from": FLOODER, "text": f"spam {n}"}
            )
            assert response.status_code == 202, response.text
            answers.append(response.json()["data"]["throttled"])
        other = await gw.client.post("/api/local/messages", json={"from": OTHER, "text": "hi"})
        assert other.json()["data"]["throttled"] is False

        assert answers == [False] * 10 + [True] * 15
        work = [e.data for e in await gw.stream(keys.WHATSAPP_MESSAGES)]
        assert [m.body for m in work if m.chat_id == f"{FLOODER}@c.us"] == [
            f"spam {n}" for n in range(10)
        ]
        chat = [e.data for e in await gw.stream(keys.chat(f"{FLOODER}@c.us"))]
        inbound = [m for m in chat if not m.from_me]
        assert [m.body for m in inbound] == [f"spam {n}" for n in range(25)]
        assert [m.throttled for m in inbound] == [False] * 10 + [True] * 15
        notices = [m.body for m in chat if m.from_me]
        assert notices == [SLOW_DOWN.format(rate="1")]
        assert INBOUND_THROTTLED._value.get() == counted + 15
        history = await gw.client.get(f"/api/messages/{FLOODER}", params={"limit": 100})
        assert len(history.json()["data"]["messages"]) == 26  # every message is shown


async def test_the_limit_refills_and_a_redelivery_spends_nothing(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(inbound_rate_per_minute=600, inbound_burst=1) as gw:
        message = LocalChannel.inbound(f"{FLOODER}@c.us", "once", None)
        first, _ = await gw.gateway.inbox.record(message)
        again, appended = await gw.gateway.inbox.record(message)  # a webhook delivered twice
        assert appended.duplicate and not first.data.throttled and not again.data.throttled
        second, _ = await gw.gateway.inbox.record(
            LocalChannel.inbound(FLOODER + "@c.us", "x", None)
        )
        assert second.data.throttled

        async def accepted_again() -> bool:  # 600 a minute: one every 100 ms
            event, _ = await gw.gateway.inbox.record(
                LocalChannel.inbound(f"{FLOODER}@c.us", "later", None)
            )
            return not event.data.throttled

        await wait_until(accepted_again, timeout=5, interval=0.02)
        notices = [e for e in await gw.stream(keys.chat(f"{FLOODER}@c.us")) if e.data.from_me]
        assert len(notices) == 1

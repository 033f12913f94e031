"""Cloud API media fetched after the webhook is answered (``aspri/api/whatsapp/deferred.py``):
the 200 does not wait for a slow download, the message is recorded once (a redelivery and a
gateway restart between the 200 and the download included), a sender over the inbound limit
makes the gateway fetch nothing, and an outage is retried, then recorded as the failure.
The Graph API is the local stand-in (it counts every media request); Valkey and the gateway
are real."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aspri.schemas import WhatsAppMessage
from aspri.schemas.media import Image
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory, Running
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import CLOUD, cloud_channel, deliver, webhook
from tests.api.whatsapp.test_cloud_media import CHAT, JPEG, message, meta_sha, recorded
from tests.helpers import wait_until

MEDIA_ID = "1103383421387256"
IMAGE = {"mime_type": "image/jpeg", "id": MEDIA_ID, "caption": "the receipt"}


async def drained(gw: Running) -> None:
    """Wait until the pending-media stream is empty (every entry handled and acknowledged)."""

    async def empty() -> bool:
        return await gw.redis.xlen(keys.WHATSAPP_MEDIA_PENDING) == 0

    await wait_until(empty, 20)


async def test_the_webhook_answers_before_a_slow_download_and_records_once(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with graph_recorder() as graph:
        graph.media = {MEDIA_ID: (JPEG, "image/jpeg")}
        graph.hold = asyncio.Event()  # the bytes come only when the test lets them
        settings = CLOUD | {"data_dir": tmp_path}
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            payload = webhook([message("wamid.SLOW", "image", IMAGE)])
            response = await deliver(gw.client, payload)
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            assert (data["messages"], data["pending"], data["eventIds"]) == (1, 1, [])
            await wait_until(lambda: graph.media_gets(MEDIA_ID) == 2)  # URL, then the bytes
            assert graph.downloads == 0  # the download is still in flight
            assert await gw.stream(keys.WHATSAPP_MESSAGES) == []

            graph.hold.set()
            [event] = await recorded(gw, 1)
            assert event.data.media == Image(
                id=MEDIA_ID,
                mime="image/jpeg",
                size=len(JPEG),
                sha256=meta_sha(JPEG),
                caption="the receipt",
            )
            # Meta redelivers the same webhook: accepted, but neither fetched nor recorded again
            assert (await deliver(gw.client, payload)).status_code == 200
            await drained(gw)
            assert len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 1
            assert len(await gw.stream(keys.chat(CHAT))) == 1
            assert graph.downloads == 1 and graph.media_gets(MEDIA_ID) == 2


async def test_a_restart_between_the_answer_and_the_download_still_records_once(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with graph_recorder() as graph:
        graph.media = {MEDIA_ID: (JPEG, "image/jpeg")}
        graph.hold = asyncio.Event()
        settings = CLOUD | {"data_dir": tmp_path}
        first = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=first, **settings) as gw:
            payload = webhook([message("wamid.KILLED", "image", IMAGE)])
            assert (await deliver(gw.client, payload)).status_code == 200
            await wait_until(lambda: graph.media_gets(MEDIA_ID) == 2)
        # the gateway stopped mid-download: nothing recorded, the entry still pending
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []
        assert await gw.redis.xlen(keys.WHATSAPP_MEDIA_PENDING) == 1

        graph.hold.set()
        second = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=second, **settings) as gw:
            [event] = await recorded(gw, 1)
            assert event.data.id == "wamid.KILLED"
            assert event.data.media.sha256 == meta_sha(JPEG)  # type: ignore[union-attr]
            await drained(gw)
            assert len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 1
            assert len(await gw.stream(keys.chat(CHAT))) == 1


async def test_a_throttled_senders_media_is_never_downloaded(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    ids = [f"12033834213872{n:02d}" for n in range(4)]
    async with graph_recorder() as graph:
        graph.media = {media_id: (JPEG, "image/jpeg") for media_id in ids}
        settings = CLOUD | {
            "data_dir": tmp_path,
            "inbound_rate_per_minute": 1,
            "inbound_burst": 1,
        }
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            flood = [
                message(f"wamid.FLOOD{n}", "image", {"mime_type": "image/jpeg", "id": media_id})
                for n, media_id in enumerate(ids)
            ]
            response = await deliver(gw.client, webhook(flood))
            assert response.status_code == 200
            data = response.json()["data"]
            assert (data["messages"], data["pending"], len(data["eventIds"])) == (4, 1, 3)

            [admitted] = await recorded(gw, 1)
            assert admitted.data.id == "wamid.FLOOD0"
            await drained(gw)
            events = await gw.stream(keys.chat(CHAT))
            chat = {e.data.id: e.data for e in events if isinstance(e.data, WhatsAppMessage)}
            for n, media_id in enumerate(ids[1:], 1):
                throttled = chat[f"wamid.FLOOD{n}"]
                assert throttled.throttled
                assert throttled.media == Image(id=media_id)  # type and id only: unresolved
                assert graph.media_gets(media_id) == 0
            assert graph.media_gets(ids[0]) == 2 and graph.downloads == 1


async def test_an_outage_is_retried_and_a_last_failure_is_recorded(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with graph_recorder() as graph:
        graph.media = {MEDIA_ID: (JPEG, "image/jpeg"), "1303383421387256": (JPEG, "image/jpeg")}
        graph.media_failures = [503, 503]  # then the Graph API is back
        settings = CLOUD | {"data_dir": tmp_path}
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            batch = [message("wamid.BACK", "image", IMAGE)]
            assert (await deliver(gw.client, webhook(batch))).status_code == 200
            [event] = await recorded(gw, 1)
            assert event.data.media.sha256 == meta_sha(JPEG)  # type: ignore[union-attr]
            assert graph.media_gets(MEDIA_ID) == 4  # three lookups, one download

            graph.media_fail_status = 500  # down for good
            down = {"mime_type": "image/jpeg", "id": "1303383421387256"}
            batch = [message("wamid.DOWN", "image", down)]
            assert (await deliver(gw.client, webhook(batch))).status_code == 200
            _, failed = await recorded(gw, 2)
            assert failed.data.id == "wamid.DOWN"
            assert failed.data.media == Image(
                id="1303383421387256",
                mime="image/jpeg",
                error="the Graph API refused the media id (500)",
            )
            assert graph.media_gets("1303383421387256") == channel.send_attempts

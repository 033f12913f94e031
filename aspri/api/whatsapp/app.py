"""The gateway's Litestar app: REST API, the engine chosen by ``WHATSAPP_ENGINE``, its routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis

from aspri.api.access import Access
from aspri.api.common import create_gateway
from aspri.api.whatsapp.assistant import Assistant
from aspri.api.whatsapp.channel import Channel
from aspri.api.whatsapp.engines.cloud import CloudChannel
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import MAX_MESSAGE_BYTES, Gateway
from aspri.api.whatsapp.local_media import upload_limit
from aspri.api.whatsapp.media_routes import get_media
from aspri.api.whatsapp.pacing import Clock
from aspri.api.whatsapp.routes import ROUTES
from aspri.config import Settings
from aspri.media import MediaStore
from aspri.telemetry import metrics

DESCRIPTION = """ASPRI's WhatsApp gateway. Inbound messages become `whatsapp:message` events;
`POST /api/send-message` sends (idempotent by key); history, chats and contacts come from the
event log. Every response is `{"success": true, "data": ...}` or
`{"success": false, "error": {"code": ..., "message": ...}}`."""


_CHAT = {"phone_number": "$response.body#/data/chatId"}
LINKS = [
    ("post", "/api/send-message", "get /api/messages/{phone_number}", _CHAT),
    ("post", "/api/local/messages", "get /api/messages/{phone_number}", _CHAT),
]
"""A chat written to leads to its history (OpenAPI links)."""


def make_channel(settings: Settings) -> Channel:
    """The channel engine named by ``settings.whatsapp_engine``."""
    if settings.whatsapp_engine == "cloud":
        return CloudChannel(settings)
    if settings.whatsapp_engine == "browser":
        try:
            from aspri.api.whatsapp.engines.browser import BrowserChannel
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "playwright":
                raise
            raise RuntimeError(
                "WHATSAPP_ENGINE=browser needs Playwright: install the browser extra "
                "(uv sync --extra browser; the image: --build-arg WITH_CHROMIUM=1)"
            ) from None
        return BrowserChannel(settings)
    return LocalChannel()


async def prune_daily(media: MediaStore) -> None:
    """Apply the media retention at start and once a day after."""
    while True:
        await asyncio.to_thread(media.prune)
        await asyncio.sleep(86400)


def create_app(
    settings: Settings,
    redis: Redis,
    channel: Channel | None = None,
    *,
    clock: Clock | None = None,
) -> Litestar:
    """The app; ``channel`` and ``clock`` may be injected (tests), else chosen from settings."""
    channel = channel or make_channel(settings)
    gateway = Gateway(settings, redis, channel, clock=clock)

    def provide_gateway() -> Gateway:
        return gateway

    access = Access.from_settings(settings, cookies=isinstance(channel, LocalChannel))

    def provide_access() -> Access:
        return access

    media = MediaStore(settings.media_dir, settings.media_max_bytes, settings.media_retention_days)

    def provide_media() -> MediaStore:
        return media

    handlers: list[ControllerRouterHandler] = [*ROUTES, get_media]
    dependencies = {
        "gateway": Provide(provide_gateway, sync_to_thread=False),
        "access": Provide(provide_access, sync_to_thread=False),
        "media": Provide(provide_media, sync_to_thread=False),
    }
    if isinstance(channel, LocalChannel):
        from aspri.api.whatsapp.local_media import post_local_media
        from aspri.api.whatsapp.local_routes import local_routes

        assistant = Assistant(settings, redis, gateway.log)

        def provide_assistant() -> Assistant:
            return assistant

        handlers += [*local_routes(), post_local_media]
        dependencies["assistant"] = Provide(provide_assistant, sync_to_thread=False)
    if isinstance(channel, CloudChannel):
        from aspri.api.whatsapp.engines.cloud_routes import receive_webhook, verify_webhook

        cloud = channel

        def provide_cloud() -> CloudChannel:
            return cloud

        handlers += [verify_webhook, receive_webhook]
        dependencies["cloud"] = Provide(provide_cloud, sync_to_thread=False)

    @asynccontextmanager
    async def running(_app: Litestar) -> AsyncIterator[None]:
        await gateway.start()
        pruning = asyncio.create_task(prune_daily(media))
        try:
            yield
        finally:
            pruning.cancel()
            await gateway.stop()

    return create_gateway(
        title="ASPRI WhatsApp gateway",
        description=DESCRIPTION,
        route_handlers=[Router("/", route_handlers=handlers, dependencies=dependencies)],
        lifespan=[running],
        request_max_body_size=4 * MAX_MESSAGE_BYTES + 64 * 1024,
        upload_max_body_size=upload_limit(settings.media_max_bytes),
        state={"gateway": gateway},
        redis=redis,
        watched=metrics.watched(settings),
        access=access,
        links=LINKS,
    )

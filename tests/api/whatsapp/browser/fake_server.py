"""A local stand-in for WhatsApp's servers, for the browser engine's tests.

Real WhatsApp cannot be reached from a test machine. This server serves the fake WhatsApp Web
pages in ``fake_wa/``, pushes commands to them over server-sent events (log in, deliver a
message, let the QR go idle), and records what they send, as WhatsApp's servers would see it.
"""

from __future__ import annotations

import json
import queue
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aspri.streams.server import free_port

PAGES = Path(__file__).with_name("fake_wa")


class FakeWhatsApp:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.absent: set[str] = set()
        """Chat ids of numbers not on WhatsApp (a new chat with them cannot be created)."""
        self.refuse: set[str] = set()
        """Chat ids whose sends WhatsApp refuses (``messageSendResult`` ERROR_NETWORK)."""
        self.presence: list[dict[str, Any]] = []
        """What the page told WhatsApp of the account's presence and reading, in order:
        ``{"chatId", "state"}`` with state ``read``, ``composing`` (and its ``duration``) or
        ``paused``."""
        self.page_loads = 0
        self.user_agents: list[str] = []
        self.connections = 0
        """Pages that opened the command stream so far."""
        self.configs: list[dict[str, Any]] = []
        """The wa-js configuration (``WPPConfig``) of each of those pages."""
        self._streams: list[queue.Queue[dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        handler = partial(_Handler, self, directory=str(PAGES))
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, page: str = "index.html") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{page}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            for stream in self._streams:
                stream.put(None)
        self._server.shutdown()
        self._server.server_close()

    def push(self, command: dict[str, Any]) -> None:
        """Send a command to every open page."""
        with self._lock:
            for stream in self._streams:
                stream.put(command)

    def _open_stream(self) -> queue.Queue[dict[str, Any] | None]:
        stream: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            self._streams.append(stream)
            self.connections += 1
        return stream

    def _close_stream(self, stream: queue.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            self._streams.remove(stream)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, fake: FakeWhatsApp, *args: Any, **kwargs: Any) -> None:
        self.fake = fake
        super().__init__(*args, **kwargs)

    def end_headers(self) -> None:
        # Every page load reaches the server, as it does on WhatsApp Web.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what the server recorded."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/exists":
            with self.fake._lock:
                absent = parse_qs(url.query)["chat"][0] in self.fake.absent
            self.send_response(404 if absent else 204)
            self.end_headers()
            return
        if url.path == "/events":
            with self.fake._lock:
                self.fake.configs.append(json.loads(parse_qs(url.query)["config"][0]))
            self._events()
            return
        if self.path.endswith(".html"):
            with self.fake._lock:
                self.fake.page_loads += 1
                self.fake.user_agents.append(self.headers.get("User-Agent", ""))
        super().do_GET()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/presence":
            with self.fake._lock:
                self.fake.presence.append(body)
            self.send_response(204)
            self.end_headers()
            return
        with self.fake._lock:
            self.fake.sent.append(body)
            refused = body["chatId"] in self.fake.refuse
        reply = json.dumps({"messageSendResult": "ERROR_NETWORK" if refused else "OK"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        stream = self.fake._open_stream()
        try:
            while (command := stream.get()) is not None:
                self.wfile.write(f"data: {json.dumps(command)}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass
        finally:
            self.fake._close_stream(stream)

"""Are the ports ``aspri up`` needs free? Checked before it imports or starts anything else
(stdlib only: it answers within a second even on a busy machine)."""

from __future__ import annotations

import errno
import socket

from aspri.config import Settings


def busy_ports(settings: Settings) -> list[tuple[str, int]]:
    """The (variable, port) pairs whose port something else already holds: the gateways', and
    with ``METRICS_PORT`` the engine's (that port) and the scheduler's (the next one)."""
    wanted = [("WHATSAPP_PORT", settings.whatsapp_port), ("CRONJOB_PORT", settings.cronjob_port)]
    if settings.metrics_port is not None:
        wanted += [
            ("METRICS_PORT", settings.metrics_port),
            ("METRICS_PORT", settings.metrics_port + 1),
        ]
    busy = []
    for variable, port in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                sock.bind((settings.host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.append((variable, port))
    return busy


def port_message(busy: list[tuple[str, int]]) -> str:
    """What to tell the user: each taken port with its variable, and what to do."""
    lines = [f"aspri up: port {port} ({variable}) is already in use" for variable, port in busy]
    variable, port = busy[0]
    lines.append(
        f"Stop what listens there, or choose another port, e.g. `{variable}={port + 10} make up`"
        f" (or `{variable}={port + 10} aspri up`). Nothing was started."
    )
    return "\n".join(lines)

"""The ports `aspri up` checks before it starts anything, each named by its variable."""

from __future__ import annotations

import socket

from aspri.config import Settings
from aspri.ports import busy_ports, port_message
from aspri.streams.server import free_port


def _taken_above_a_free_port() -> socket.socket:
    """A listening socket on a port whose neighbour below is free: the kernel's pick may sit
    right above a port another process holds (it happened in CI)."""
    for _ in range(100):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as busy_ports binds
            try:
                probe.bind(("127.0.0.1", taken.getsockname()[1] - 1))
            except OSError:
                taken.close()
                continue
        return taken
    raise RuntimeError("no port with a free neighbour below it")


def test_each_taken_port_is_named_with_its_variable() -> None:
    with _taken_above_a_free_port() as taken:
        port = taken.getsockname()[1]
        free = free_port()
        settings = Settings(whatsapp_port=free, cronjob_port=port, metrics_port=port - 1)
        busy = busy_ports(settings)
    assert busy == [("CRONJOB_PORT", port), ("METRICS_PORT", port)]  # the scheduler's: +1
    message = port_message(busy)
    assert f"port {port} (CRONJOB_PORT) is already in use" in message
    assert f"CRONJOB_PORT={port + 10} make up" in message


def test_free_ports_are_not_reported() -> None:
    assert busy_ports(Settings(whatsapp_port=free_port(), cronjob_port=free_port())) == []

"""The embedded Valkey: persistence across restarts, ports that do not collide."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from aspri.streams.server import EmbeddedServer


def test_streams_survive_a_restart_on_the_same_directory(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "vk")
    url = server.start()
    client = Redis.from_url(url)
    client.xadd("chat:1", {"type": "x", "data": "{}"})
    client.xgroup_create("chat:1", "g", id="0")
    client.close()
    server.stop()

    again = EmbeddedServer(tmp_path / "vk")
    client = Redis.from_url(again.start())
    try:
        assert client.xlen("chat:1") == 1
        assert [g["name"] for g in client.xinfo_groups("chat:1")] == [b"g"]
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    finally:
        client.close()
        again.stop()


def test_two_servers_get_different_ports(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "a") as a, EmbeddedServer(tmp_path / "b") as b:
        assert a != b
        Redis.from_url(a).set("k", "a")
        assert Redis.from_url(b).get("k") is None

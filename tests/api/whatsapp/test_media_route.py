"""``GET /api/media/{sha256}`` on the real gateway: behind the key, by hex name only, typed by
the bytes and never by a sender's claim."""

from __future__ import annotations

from pathlib import Path

import httpx

from aspri.media import MediaStore
from tests.api.whatsapp.conftest import GatewayFactory

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"j" * 64
HTML = b"<html><script>alert(document.cookie)</script></html>"


async def test_stored_media_is_served_back_behind_the_key(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    media = MediaStore(tmp_path / "media", {"image": 10_000, "document": 10_000})
    jpeg = await media.put("image", JPEG)
    html = await media.put("document", HTML)
    async with open_gateway(data_dir=tmp_path) as gw:
        response = await gw.client.get(f"/api/media/{jpeg.sha256}")
        assert response.status_code == 200
        assert response.content == JPEG
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["x-content-type-options"] == "nosniff"

        served = await gw.client.get(f"/api/media/{html.sha256}")
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in served.headers["content-security-policy"]

        transport = gw.client._transport
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as anon:
            refused = await anon.get(f"/api/media/{jpeg.sha256}")
        assert refused.status_code == 401

        missing = await gw.client.get(f"/api/media/{'0' * 64}")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_media")
        for name in ("..%2F..%2Fkey", jpeg.sha256.upper(), jpeg.sha256[:-1]):
            bad = await gw.client.get(f"/api/media/{name}")
            assert bad.status_code in (400, 404), name
            assert bad.status_code != 200
        bad = await gw.client.get(f"/api/media/{jpeg.sha256[:-1]}")
        assert bad.status_code == 400 and "sha256" in bad.json()["error"]["message"]

"""The OpenAPI UI of both gateways, served entirely by the gateway itself.

Litestar emits OpenAPI 3.1, which Swagger UI reads from version 5 on. The assets come from the
``swagger-ui-py`` wheel (Swagger UI 5, pinned with its hash in ``uv.lock``), so the page, its
scripts and its favicon load from ``/schema-assets`` and render with no internet access — no CDN,
and nothing copied into this repository.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/schema-assets"


def _assets() -> Path:
    """Swagger UI's distribution files inside the installed ``swagger-ui-py`` package, found
    without importing it (its module pulls in template engines the gateway does not use)."""
    spec = find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed; reinstall ASPRI (make up)")
    return Path(spec.origin).parent / "static"


ASSETS = _assets()
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>"


def swagger_ui() -> SwaggerRenderPlugin:
    """The render plugin for ``/schema/swagger`` (and ``/schema``), pointing at local assets."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=FAVICON,
        path=["/swagger", "/"],
    )


def swagger_assets() -> Router:
    """The static route that serves the UI's scripts, stylesheet and favicon."""
    return create_static_files_router(
        path=ASSETS_PATH, directories=[ASSETS], include_in_schema=False
    )

"""Every route of a gateway app with its access rule, read from the app itself: a test that
walks this list covers a route added later without being edited."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.routes import HTTPRoute

from aspri.api.access import PUBLIC

_PARAM = re.compile(r"\{[^}]+\}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes(app: Litestar) -> list[tuple[str, str, bool]]:
    """``(method, path, public)`` of every API route (path parameters filled in); the OpenAPI
    pages under ``/schema`` are public by design and left out."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods & set(METHODS)):
                path = _PARAM.sub("x", route.path)
                found.append((method, path, bool(handler.opt.get(PUBLIC))))
    return found

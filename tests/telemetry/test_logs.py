"""Log lines are plain text: uvicorn's coloured copy of its messages never reaches them."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from litestar import Litestar

from aspri.telemetry.logs import setup_logging
from tests.helpers import serve_asgi


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_uvicorn_start_up_lines_carry_no_ansi_codes(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)  # the handler writes where stderr was at set-up
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("aspri-test", fmt, "INFO")
    try:
        async with serve_asgi(Litestar(route_handlers=[], logging_config=None)) as url:
            pass
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = out.getvalue()
    assert f"Uvicorn running on {url}" in err  # uvicorn's line with a color_message copy
    assert "\x1b[" not in err and "\\u001b[" not in err

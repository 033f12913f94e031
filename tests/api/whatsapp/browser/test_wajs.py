"""Getting wa-js onto the machine, and the reconnect backoff.

The registry cannot be relied on from a test machine, so ``npm pack`` is pointed at a local
package directory laid out like ``@wppconnect/wa-js`` (``dist/wppconnect-wa.js``): the same
npm command and tarball handling as for the real package.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from aspri.api.whatsapp.engines.browser import backoff_delays
from aspri.api.whatsapp.engines.browser_wajs import REFRESH_AFTER_S, WaJsUnavailable, wajs_script
from aspri.config import Settings

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def wa_js_package(root: Path, version: str, script: str) -> Path:
    package = root / f"wa-js-{version}"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(
        json.dumps({"name": "@wppconnect/wa-js", "version": version})
    )
    (package / "dist" / "wppconnect-wa.js").write_text(script)
    return package


@needs_npm
@pytest.mark.slow
async def test_fetches_wajs_with_npm_and_keeps_it(tmp_path: Path) -> None:
    package = wa_js_package(tmp_path, "9.9.9", "window.WPP = {v: 1};")
    settings = Settings(data_dir=tmp_path / "data", wajs_package=str(package))

    script = await wajs_script(settings)
    assert script == tmp_path / "data" / "wa-js" / "wppconnect-wa.js"
    assert script.read_text() == "window.WPP = {v: 1};"
    source = json.loads((script.parent / "source.json").read_text())
    assert (source["package"], source["version"]) == (str(package), "9.9.9")

    # Fresh enough: used without npm (the package may be gone meanwhile).
    shutil.rmtree(package)
    assert (await wajs_script(settings)).read_text() == "window.WPP = {v: 1};"

    # Due for a refresh that fails: the cached copy still serves.
    source["fetchedAt"] = time.time() - REFRESH_AFTER_S - 1
    (script.parent / "source.json").write_text(json.dumps(source))
    assert (await wajs_script(settings)).read_text() == "window.WPP = {v: 1};"

    # Due and available: replaced by the newer bundle.
    newer = wa_js_package(tmp_path, "9.9.10", "window.WPP = {v: 2};")
    os.rename(newer, package)
    assert (await wajs_script(settings)).read_text() == "window.WPP = {v: 2};"
    assert json.loads((script.parent / "source.json").read_text())["version"] == "9.9.10"


@needs_npm
async def test_a_package_npm_cannot_fetch_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", wajs_package=str(tmp_path / "missing"))
    with pytest.raises(WaJsUnavailable, match="npm pack"):
        await wajs_script(settings)


async def test_wajs_path_setting_is_used_as_is(tmp_path: Path) -> None:
    local = tmp_path / "wppconnect-wa.js"
    local.write_text("window.WPP = {};")
    assert await wajs_script(Settings(data_dir=tmp_path, wajs_path=str(local))) == local
    with pytest.raises(WaJsUnavailable, match="WHATSAPP_WAJS_PATH"):
        await wajs_script(Settings(data_dir=tmp_path, wajs_path=str(tmp_path / "nope.js")))


def test_backoff_doubles_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff_delays(1.0, 60.0), 8)) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_browser_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WHATSAPP_BROWSER_HEADLESS": "false",
            "WHATSAPP_WAJS_PATH": "/opt/wa-js/wppconnect-wa.js",
            "WHATSAPP_WAJS_PACKAGE": "@wppconnect/wa-js@4.6.0",
        }
    )
    assert settings.browser_headless is False
    assert settings.wajs_path == "/opt/wa-js/wppconnect-wa.js"
    assert settings.wajs_package == "@wppconnect/wa-js@4.6.0"
    assert Settings.from_env({}).browser_headless is True

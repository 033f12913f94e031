"""Getting wa-js onto the machine (pinned, integrity-checked), and the reconnect backoff.

The registry cannot be relied on from a test machine, so ``npm pack`` is pointed at a local
package directory laid out like ``@wppconnect/wa-js`` (``dist/wppconnect-wa.js``): the same
npm command, integrity check and tarball handling as for the real package.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from aspri.api.whatsapp.engines.browser import backoff_delays
from aspri.api.whatsapp.engines.browser_wajs import (
    WaJsUnavailable,
    integrity_of,
    is_pinned,
    wajs_script,
)
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


def packed_integrity(package: Path, into: Path) -> str:
    """What ``npm pack`` makes of ``package``, as npm's integrity string (the pin to give)."""
    into.mkdir(exist_ok=True)
    out = subprocess.run(
        ["npm", "pack", str(package), "--json", "--silent", "--pack-destination", str(into)],
        capture_output=True,
        check=True,
        cwd=into,
    ).stdout
    return integrity_of((into / json.loads(out)[0]["filename"]).read_bytes())


@needs_npm
@pytest.mark.slow
async def test_fetches_wajs_verifies_it_and_keeps_it(tmp_path: Path) -> None:
    package = wa_js_package(tmp_path, "9.9.9", "window.WPP = {v: 1};")
    pin = packed_integrity(package, tmp_path / "pack")
    settings = Settings(data_dir=tmp_path / "data", wajs_package=str(package), wajs_integrity=pin)

    script = await wajs_script(settings)
    assert script == tmp_path / "data" / "wa-js" / "wppconnect-wa.js"
    assert script.read_text() == "window.WPP = {v: 1};"

    # Kept: used without npm (the package may be gone meanwhile), checked again each time.
    shutil.rmtree(package)
    script.write_text("window.WPP = {evil: true};")  # the extracted copy is never trusted
    assert (await wajs_script(settings)).read_text() == "window.WPP = {v: 1};"

    # A cached tarball that changed is not injected: it is fetched again, here in vain.
    tarball = script.parent / "wa-js.tgz"
    tarball.write_bytes(tarball.read_bytes() + b"\0")
    with pytest.raises(WaJsUnavailable, match="npm pack"):
        await wajs_script(settings)


@needs_npm
async def test_a_package_that_does_not_match_its_integrity_is_refused(tmp_path: Path) -> None:
    package = wa_js_package(tmp_path, "9.9.9", "window.WPP = {v: 1};")
    other = wa_js_package(tmp_path / "other", "9.9.9", "window.WPP = {swapped: true};")
    pin = packed_integrity(other, tmp_path / "pack")
    settings = Settings(data_dir=tmp_path / "data", wajs_package=str(package), wajs_integrity=pin)
    with pytest.raises(WaJsUnavailable, match="does not match WHATSAPP_WAJS_INTEGRITY"):
        await wajs_script(settings)
    assert list((tmp_path / "data" / "wa-js").iterdir()) == []  # nothing left to inject


@needs_npm
async def test_a_package_npm_cannot_fetch_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", wajs_package=str(tmp_path / "missing"))
    with pytest.raises(WaJsUnavailable, match="npm pack"):
        await wajs_script(settings)


async def test_a_moving_tag_or_a_bad_integrity_is_refused_before_npm(tmp_path: Path) -> None:
    for spec in ("@wppconnect/wa-js@latest", "@wppconnect/wa-js", "@wppconnect/wa-js@^4.6.0"):
        settings = Settings(data_dir=tmp_path, wajs_package=spec)
        with pytest.raises(WaJsUnavailable, match="not an exact version"):
            await wajs_script(settings)
    with pytest.raises(WaJsUnavailable, match="sha512 integrity"):
        await wajs_script(Settings(data_dir=tmp_path, wajs_integrity="sha1-abc"))
    assert not (tmp_path / "wa-js").exists()


def test_the_default_is_an_exact_version_with_its_integrity() -> None:
    settings = Settings()
    assert is_pinned(settings.wajs_package), settings.wajs_package
    assert settings.wajs_package.startswith("@wppconnect/wa-js@")
    assert settings.wajs_integrity.startswith("sha512-") and len(settings.wajs_integrity) == 95


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
            "WHATSAPP_WAJS_PACKAGE": "@wppconnect/wa-js@4.7.0",
            "WHATSAPP_WAJS_INTEGRITY": "sha512-AAAA",
        }
    )
    assert settings.browser_headless is False
    assert settings.wajs_path == "/opt/wa-js/wppconnect-wa.js"
    assert settings.wajs_package == "@wppconnect/wa-js@4.7.0"
    assert settings.wajs_integrity == "sha512-AAAA"
    assert Settings.from_env({}).browser_headless is True

"""Where the browser engine gets wa-js, the bridge into WhatsApp Web's own modules.

wa-js (``@wppconnect/wa-js``, Apache-2.0) follows WhatsApp Web's frequent releases, so it is not
vendored: ``WHATSAPP_WAJS_PATH`` names a local copy, otherwise ``npm pack`` fetches
``WHATSAPP_WAJS_PACKAGE`` (default ``@wppconnect/wa-js@latest``; npm checks the tarball's
integrity) into ``<data dir>/wa-js`` at first use. A cache of a moving tag such as ``latest`` is
refreshed once a day, because a stale wa-js stops working after a WhatsApp Web update; when the
refresh fails the cached copy is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from aspri.config import Settings

log = logging.getLogger("aspri.whatsapp.browser")

CONFIG = {"deviceName": "ASPRI", "disableGoogleAnalytics": True}
"""``window.WPPConfig``, read by wa-js as it loads: the name the phone lists among linked devices,
and no usage reports to wa-js's Google Analytics (on by default)."""
SCRIPT = "package/dist/wppconnect-wa.js"
"""The bundle inside the npm tarball that defines ``window.WPP``."""
REFRESH_AFTER_S = 24 * 3600
_EXACT_VERSION = re.compile(r"@\d+\.\d+\.\d+$")
_NPM_TIMEOUT_S = 120.0


class WaJsUnavailable(RuntimeError):
    """wa-js could not be found or fetched; the message says what to do."""


async def wajs_script(settings: Settings) -> Path:
    """The path of the wa-js bundle to inject, fetching it with npm when needed."""
    if settings.wajs_path:
        path = Path(settings.wajs_path)
        if not await asyncio.to_thread(path.is_file):
            raise WaJsUnavailable(f"WHATSAPP_WAJS_PATH={path} is not a file")
        return path
    cache = settings.data_dir / "wa-js"
    script = cache / "wppconnect-wa.js"
    spec = settings.wajs_package
    cached, fresh = await asyncio.to_thread(_look_up, cache, spec)
    if cached and fresh:
        return script
    try:
        version = await _npm_fetch(spec, script)
    except WaJsUnavailable:
        if not cached:
            raise
        log.warning("wa-js refresh failed, using the cached copy", exc_info=True)
        return script
    await asyncio.to_thread(_record, cache, spec, version)
    log.info("wa-js fetched", extra={"package": spec, "version": version})
    return script


def _look_up(cache: Path, spec: str) -> tuple[bool, bool]:
    """Whether ``cache`` holds the bundle of ``spec``, and whether it is recent enough."""
    try:
        meta = json.loads((cache / "source.json").read_text())
    except (OSError, ValueError):
        return False, False
    if not isinstance(meta, dict) or meta.get("package") != spec:
        return False, False
    if not (cache / "wppconnect-wa.js").is_file():
        return False, False
    fetched = meta.get("fetchedAt")
    age = time.time() - fetched if isinstance(fetched, int | float) else float("inf")
    return True, bool(_EXACT_VERSION.search(spec)) or age < REFRESH_AFTER_S


def _record(cache: Path, spec: str, version: str) -> None:
    meta = {"package": spec, "version": version, "fetchedAt": time.time()}
    (cache / "source.json").write_text(json.dumps(meta))


async def _npm_fetch(spec: str, target: Path) -> str:
    """``npm pack`` the package and copy its bundle to ``target``; return the version."""
    npm = shutil.which("npm")
    if npm is None:
        raise WaJsUnavailable(
            "npm is needed to fetch wa-js: install Node.js, or set WHATSAPP_WAJS_PATH to a local "
            "copy of wppconnect-wa.js"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = await asyncio.create_subprocess_exec(
            npm,
            "pack",
            spec,
            "--json",
            "--silent",
            "--pack-destination",
            tmp,
            cwd=tmp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), _NPM_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise WaJsUnavailable(
                f"npm pack {spec} took longer than {_NPM_TIMEOUT_S:.0f}s"
            ) from None
        if proc.returncode != 0:
            raise WaJsUnavailable(f"npm pack {spec} failed: {err.decode(errors='replace')[-500:]}")
        try:
            packed = json.loads(out)[0]
            tarball = Path(tmp) / packed["filename"]
            version = str(packed["version"])
        except (ValueError, LookupError, TypeError) as exc:
            raise WaJsUnavailable(f"npm pack {spec} printed no package: {exc}") from None
        staged = Path(tmp) / "wppconnect-wa.js"
        await asyncio.to_thread(_extract, tarball, staged)
        staged.replace(target)
    return version


def _extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        try:
            member = tar.extractfile(SCRIPT)
        except KeyError:
            member = None
        if member is None:
            raise WaJsUnavailable(f"{tarball.name} has no {SCRIPT}")
        with member, dest.open("wb") as out:
            shutil.copyfileobj(member, out)

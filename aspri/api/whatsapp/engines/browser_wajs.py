"""Where the browser engine gets wa-js, the bridge into WhatsApp Web's own modules.

wa-js (``@wppconnect/wa-js``, Apache-2.0) is not vendored: ``WHATSAPP_WAJS_PATH`` names a local
copy, otherwise ``npm pack`` fetches ``WHATSAPP_WAJS_PACKAGE`` — an exact version, never a moving
tag — into ``<data dir>/wa-js`` at first use. Before anything is injected into WhatsApp Web the
tarball's SHA-512 is checked against ``WHATSAPP_WAJS_INTEGRITY`` (npm's ``sha512-…`` integrity
string, as ``npm view @wppconnect/wa-js@VERSION dist.integrity`` prints it), at every start, so
neither a swapped registry package nor a changed cache file reaches the page. Upgrading wa-js
after a WhatsApp Web update means changing both settings (or their defaults in ``config.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from aspri.config import Settings

log = logging.getLogger("aspri.whatsapp.browser")

CONFIG = {"deviceName": "ASPRI", "disableGoogleAnalytics": True}
"""``window.WPPConfig``, read by wa-js as it loads: the name the phone lists among linked devices,
and no usage reports to wa-js's Google Analytics (on by default)."""
SCRIPT = "package/dist/wppconnect-wa.js"
"""The bundle inside the npm tarball that defines ``window.WPP``."""
_EXACT_VERSION = re.compile(r"^@?[^@\s]+@\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
_NPM_TIMEOUT_S = 120.0


class WaJsUnavailable(RuntimeError):
    """wa-js could not be found, fetched or verified; the message says what to do."""


def integrity_of(data: bytes) -> str:
    """npm's integrity string of a tarball: ``sha512-`` and the base64 digest."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def is_pinned(spec: str) -> bool:
    """An exact registry version (``name@1.2.3``) or a local package path, never a tag."""
    return bool(_EXACT_VERSION.match(spec)) or spec.startswith(("/", "./", "../", "file:"))


async def wajs_script(settings: Settings) -> Path:
    """The path of the verified wa-js bundle to inject, fetching it with npm when needed."""
    if settings.wajs_path:
        path = Path(settings.wajs_path)
        if not await asyncio.to_thread(path.is_file):
            raise WaJsUnavailable(f"WHATSAPP_WAJS_PATH={path} is not a file")
        return path
    spec, integrity = settings.wajs_package, settings.wajs_integrity
    if not is_pinned(spec):
        raise WaJsUnavailable(
            f"WHATSAPP_WAJS_PACKAGE={spec} is not an exact version: name one "
            "(@wppconnect/wa-js@X.Y.Z) and its WHATSAPP_WAJS_INTEGRITY"
        )
    if not integrity.startswith("sha512-"):
        raise WaJsUnavailable(
            f"WHATSAPP_WAJS_INTEGRITY={integrity!r} is not an npm sha512 integrity string"
        )
    cache = settings.data_dir / "wa-js"
    tarball, script = cache / "wa-js.tgz", cache / "wppconnect-wa.js"
    if not await asyncio.to_thread(_verified, tarball, integrity):
        await _npm_fetch(spec, tarball)
        if not await asyncio.to_thread(_verified, tarball, integrity):
            await asyncio.to_thread(tarball.unlink, missing_ok=True)
            raise WaJsUnavailable(
                f"npm pack {spec} does not match WHATSAPP_WAJS_INTEGRITY: refusing to inject it"
            )
        log.info("wa-js fetched and verified", extra={"package": spec})
    await asyncio.to_thread(_extract, tarball, script)
    return script


def _verified(tarball: Path, integrity: str) -> bool:
    try:
        data = tarball.read_bytes()
    except OSError:
        return False
    return integrity_of(data) == integrity


async def _npm_fetch(spec: str, target: Path) -> None:
    """``npm pack`` the package and move its tarball to ``target``."""
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
            packed = Path(tmp) / json.loads(out)[0]["filename"]
        except (ValueError, LookupError, TypeError) as exc:
            raise WaJsUnavailable(f"npm pack {spec} printed no package: {exc}") from None
        packed.replace(target)


def _extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        try:
            member = tar.extractfile(SCRIPT)
        except KeyError:
            member = None
        if member is None:
            raise WaJsUnavailable(f"{tarball.name} has no {SCRIPT}")
        staged = dest.with_suffix(".tmp")
        with member, staged.open("wb") as out:
            shutil.copyfileobj(member, out)
        staged.replace(dest)

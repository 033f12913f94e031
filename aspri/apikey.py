"""The API key every process shares, the engine's credential derived from it, signed tokens.

No process is open by default: ``ASPRI_API_KEY`` names the key; when it is unset, every process
reads the key file under ``ASPRI_DATA_DIR`` (the first one creates it, mode 600, race-safe), so
``aspri up`` and its children agree without configuration. ``ASPRI_API_KEY=off`` is the explicit
opt-out for development. Everything else here is derived from the key with HMAC, so rotating the
key invalidates the engine's credential, web-chat sessions and unused login links at once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path

from aspri.config import Settings

OFF = "off"
KEY_FILE = "api-key"
LOGIN_TTL_S = 15 * 60
"""How long a one-time web-chat login link stays valid."""
SESSION_TTL_S = 30 * 24 * 3600
"""How long a web-chat session cookie stays valid."""


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def read_or_create(path: Path) -> str:
    """The key in ``path``; created first (mode 600) when missing. Concurrent first starts
    agree: the key is written to a private temporary file that is then hard-linked into place,
    which fails for every process but one, so no reader ever sees a half-written key."""
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"the API key file {path} is empty; delete it to get a new key")
    return key


def effective(settings: Settings) -> str | None:
    """The key the APIs require, or None when ``ASPRI_API_KEY=off``."""
    value = settings.api_key
    if value is None:
        return read_or_create(key_file(settings.data_dir))
    return None if value.strip().lower() == OFF else value


def resolved(settings: Settings) -> Settings:
    """``settings`` with ``api_key`` set to the key in force (or ``off``), read once."""
    return replace(settings, api_key=effective(settings) or OFF)


def _mac(key: str, *parts: str) -> str:
    digest = hmac.new(key.encode(), "|".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def engine_credential(key: str) -> str:
    """The engine's own credential: only it may use the ``engine:``/``cron:`` idempotency
    namespaces and ``causationId``; a holder of the API key cannot impersonate it."""
    return "eng_" + _mac(key, "aspri-engine-credential-v1")


def login_token(key: str, *, now: float | None = None, ttl_s: int = LOGIN_TTL_S) -> str:
    """A one-time web-chat login token: ``nonce.expires.mac`` (single use is checked by the
    gateway, which remembers used nonces until they expire)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{expires}.{_mac(key, 'login', nonce, str(expires))}"


def check_login_token(key: str, token: str, *, now: float | None = None) -> tuple[str, int] | None:
    """``(nonce, expires)`` of a well-signed, unexpired login token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    nonce, expires, mac = parts
    if not hmac.compare_digest(mac.encode(), _mac(key, "login", nonce, expires).encode()):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return nonce, int(expires)


def session_cookie(key: str, *, now: float | None = None, ttl_s: int = SESSION_TTL_S) -> str:
    """A signed web-chat session: ``expires.mac``."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{expires}.{_mac(key, 'session', str(expires))}"


def check_session_cookie(key: str, value: str, *, now: float | None = None) -> bool:
    expires, _, mac = value.partition(".")
    if not expires.isdigit():
        return False
    if not hmac.compare_digest(mac.encode(), _mac(key, "session", expires).encode()):
        return False
    return int(expires) > (time.time() if now is None else now)

"""The shared key: where it comes from, the key file made once by racing processes, tokens."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from aspri import apikey
from aspri.config import Settings

RACER = (
    "import sys; from pathlib import Path; from aspri.apikey import read_or_create; "
    "print(read_or_create(Path(sys.argv[1])))"
)


def test_racing_first_starts_agree_on_one_private_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-key"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, str(path)], stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    keys = {p.communicate(timeout=60)[0].decode().strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) >= 40
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["api-key"]  # no temporary files left


def test_the_environment_wins_and_off_is_explicit(tmp_path: Path) -> None:
    assert apikey.effective(Settings(api_key="k1", data_dir=tmp_path)) == "k1"
    assert apikey.effective(Settings(api_key="off", data_dir=tmp_path)) is None
    assert apikey.effective(Settings(api_key="OFF", data_dir=tmp_path)) is None
    assert not (tmp_path / "api-key").exists()
    from_file = apikey.effective(Settings(data_dir=tmp_path))
    assert from_file == (tmp_path / "api-key").read_text().strip()
    assert apikey.resolved(Settings(data_dir=tmp_path)).api_key == from_file
    assert apikey.resolved(Settings(api_key="off", data_dir=tmp_path)).api_key == "off"


def test_an_empty_key_file_is_an_error_not_an_open_gateway(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        apikey.effective(Settings(data_dir=tmp_path))


def test_login_tokens_and_sessions_are_signed_and_expire() -> None:
    now = time.time()
    token = apikey.login_token("k", now=now)
    nonce, expires = apikey.check_login_token("k", token, now=now) or ("", 0)
    assert nonce and expires == int(now + apikey.LOGIN_TTL_S)
    assert apikey.check_login_token("k", token, now=now + apikey.LOGIN_TTL_S + 1) is None
    assert apikey.check_login_token("other", token, now=now) is None
    assert apikey.check_login_token("k", token.replace(".", ".9", 1), now=now) is None
    cookie = apikey.session_cookie("k", now=now)
    assert apikey.check_session_cookie("k", cookie, now=now)
    assert not apikey.check_session_cookie("k", cookie, now=now + apikey.SESSION_TTL_S + 1)
    assert not apikey.check_session_cookie("other", cookie, now=now)
    assert not apikey.check_session_cookie("k", "garbage", now=now)

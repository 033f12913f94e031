"""Recovery of `aspri up` from a `kill -9` of its Valkey (the store of every service).

    .venv/bin/python bench/recovery.py                  # 8 kills (make bench)
    .venv/bin/python bench/recovery.py --kills 20

Starts the real `aspri up` (embedded Valkey, both gateways, scheduler, one engine worker; no
model: a `/help` is answered without one) in a temporary data directory, then kills Valkey with
SIGKILL again and again (12 s apart, so the supervisor never sees a crash loop) and measures
from the kill:
  - the first 200 from the WhatsApp gateway's /health and from the cron gateway's /health;
  - a `/help` sent as soon as the WhatsApp gateway answers again: when its reply is in the chat.
Each round also checks that no reply was lost (AOF) and none came twice.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from aspri.streams.server import free_port

PHONE = "15550002222"
KEY = secrets.token_urlsafe(24)


def wait(check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"not within {timeout} s: {check}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        wa, cron = free_port(), free_port()
        env = {
            **os.environ,
            "ASPRI_DATA_DIR": str(data),
            "WHATSAPP_PORT": str(wa),
            "CRONJOB_PORT": str(cron),
            "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",
            "ASPRI_NO_BROWSER": "1",
            "LOG_LEVEL": "warning",
            "ASPRI_API_KEY": KEY,
        }
        env.pop("REDIS_URL", None)
        log = Path(tmp) / "up.log"
        up = subprocess.Popen(
            [sys.executable, "-m", "aspri.cli", "up"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            start_new_session=True,
        )
        try:
            rows = run(args.kills, data, f"http://127.0.0.1:{wa}", f"http://127.0.0.1:{cron}", log)
        finally:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(60)
    report(rows)


def run(kills: int, data: Path, wa: str, cron: str, log: Path) -> list[dict[str, float]]:
    try:
        wait(lambda: "ASPRI is up." in log.read_text(), timeout=300)
    except SystemExit:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    client = httpx.Client(timeout=5.0, headers={"X-API-Key": KEY})

    def replies() -> int:
        page = client.get(f"{wa}/api/messages/{PHONE}").json()["data"]["messages"]
        return sum(1 for m in page if m["fromMe"])

    def send_help() -> None:
        body = {"from": PHONE, "name": "Bench", "text": "/help"}
        assert client.post(f"{wa}/api/local/messages", json=body).status_code == 202

    send_help()
    wait(lambda: replies() == 1)
    rows = []
    for n in range(kills):
        valkey = json.loads((data / "up.json").read_text())["children"]["valkey"]
        os.kill(valkey, signal.SIGKILL)
        killed = time.monotonic()
        gone = Path(f"/proc/{valkey}")
        wait(lambda gone=gone: not gone.exists(), timeout=10, interval=0.001)
        wait(lambda: client.get(f"{wa}/health").status_code == 200)
        row = {"whatsapp": time.monotonic() - killed}
        send_help()
        wait(lambda: client.get(f"{cron}/health").status_code == 200)
        row["cron"] = time.monotonic() - killed
        expected = n + 2
        wait(lambda expected=expected: replies() >= expected)
        row["reply"] = time.monotonic() - killed
        if replies() != expected:
            raise SystemExit(f"round {n + 1}: {replies()} replies, expected {expected}")
        rows.append(row)
        print(
            f"kill {n + 1}: /health 200 after {row['whatsapp'] * 1000:.0f} ms (whatsapp), "
            f"{row['cron'] * 1000:.0f} ms (cron); /help answered after {row['reply']:.2f} s",
            flush=True,
        )
        time.sleep(max(0.0, killed + 12 - time.monotonic()))
    return rows


def report(rows: list[dict[str, float]]) -> None:
    load = os.getloadavg()[0]
    print(f"\n{len(rows)} kills of Valkey under `aspri up` (load average {load:.1f}):")
    for key, what in (
        ("whatsapp", "WhatsApp gateway /health 200"),
        ("cron", "cron gateway /health 200"),
        ("reply", "/help sent after recovery answered"),
    ):
        values = sorted(r[key] for r in rows)
        print(f"  kill -> {what:<36} p50 {median(values):.3f} s, max {values[-1]:.3f} s")


if __name__ == "__main__":
    main()

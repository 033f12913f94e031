"""One trace per message and per cron fire, across real processes, as a collector receives it.

The services run as separate processes (``aspri whatsapp``, ``cron``, ``scheduler``, ``engine``,
which spawns ``aspri mcp``) on the real Valkey, exporting with their real OTLP/HTTP exporter to a
receiver in this test that decodes the protobuf. The model is ``langchain-openai`` against a
scripted OpenAI-compatible server. Each process's ``/metrics`` is parsed with prometheus_client's
parser before and after, and must have moved.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, post
from litestar.params import JSONBody
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from aspri.agents.scheduler.fire import trigger_event_id
from aspri.streams import keys
from aspri.streams.server import EmbeddedServer, free_port
from tests.helpers import API_KEY, AUTH, database_url, serve_asgi, wait_until
from tests.otlp import ReceivedSpan, Receiver, ancestors

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TRACES_DB = 4093
"""A database of the session's Valkey that the per-test numbering never reaches."""
MODEL = "scripted-model"


def completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """Asked about jobs, the model lists them through a tool, then answers; else it greets."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return completion({"role": "assistant", "content": "You have no jobs yet."})
    if "jobs" in str(last.get("content")):
        call = {"id": "call_0", "type": "function"}
        call["function"] = {"name": "cronjob_list", "arguments": json.dumps({})}  # type: ignore[assignment]
        return completion({"role": "assistant", "content": None, "tool_calls": [call]})
    return completion({"role": "assistant", "content": "Good morning! Time to stretch."})


@dataclass
class System:
    receiver: Receiver
    whatsapp: str
    cron: str
    engine_metrics: str
    scheduler_metrics: str
    http: httpx.AsyncClient

    async def metrics(self) -> dict[str, dict[str, float]]:
        """Every process's samples: ``{process: {"name{labels}": value}}``."""
        out: dict[str, dict[str, float]] = {}
        for process, url in (
            ("whatsapp", f"{self.whatsapp}/metrics"),
            ("cron", f"{self.cron}/metrics"),
            ("engine", self.engine_metrics),
            ("scheduler", self.scheduler_metrics),
        ):
            response = await self.http.get(url)
            assert response.status_code == 200, (process, response.text)
            samples: dict[str, float] = {}
            for family in text_string_to_metric_families(response.text):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    samples[f"{s.name}{{{labels}}}"] = s.value
            out[process] = samples
        return out


def _start(command: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aspri.cli", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(logs / f"{command}.log").open("wb"),
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def processes_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("traces")


@pytest.fixture(scope="module")
async def system(valkey_server: EmbeddedServer, processes_dir: Path) -> AsyncIterator[System]:
    receiver = Receiver()

    @post("/v1/chat/completions", status_code=200)
    async def chat(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return answer(data)

    wa_port, cron_port, engine_port, scheduler_port = (free_port() for _ in range(4))
    async with (
        serve_asgi(receiver.app()) as otlp_url,
        serve_asgi(Litestar([chat], logging_config=None)) as model_url,
        httpx.AsyncClient(timeout=10, headers=AUTH) as http,
    ):
        env = {
            **os.environ,
            "REDIS_URL": database_url(valkey_server, TRACES_DB),
            "ASPRI_DATA_DIR": str(processes_dir / "data"),
            "WHATSAPP_PORT": str(wa_port),
            "CRONJOB_PORT": str(cron_port),
            "LLM_PROVIDER": "openai",
            "OPENAI_BASE_URL": f"{model_url}/v1",
            "OPENAI_API_KEY": "scripted",
            "LLM_MODEL": MODEL,
            "CONSUMER_NAME": "traces-test",
            "ASPRI_API_KEY": API_KEY,
            "LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        for name in ("OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):
            env.pop(name, None)
        children = [
            _start("whatsapp", env, processes_dir),
            _start("cron", env, processes_dir),
            _start("scheduler", env | {"METRICS_PORT": str(scheduler_port)}, processes_dir),
            _start("engine", env | {"METRICS_PORT": str(engine_port)}, processes_dir),
        ]
        s = System(
            receiver,
            f"http://127.0.0.1:{wa_port}",
            f"http://127.0.0.1:{cron_port}",
            f"http://127.0.0.1:{engine_port}/metrics",
            f"http://127.0.0.1:{scheduler_port}/metrics",
            http,
        )

        async def up() -> bool:
            for child in children:
                assert child.poll() is None, _logs(processes_dir)
            try:
                await s.metrics()
                consumers = await redis.xinfo_consumers(keys.WHATSAPP_MESSAGES, keys.ENGINE_GROUP)
            except (httpx.HTTPError, AssertionError, ResponseError):
                return False
            return any(c["name"] == b"traces-test" for c in consumers)  # the engine reads

        redis = Redis.from_url(env["REDIS_URL"])
        try:
            await wait_until(up, 180, interval=0.2)
            yield s
        finally:
            await redis.aclose()
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _logs(directory: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in directory.glob("*.log"))


def one(spans: list[ReceivedSpan], name: str, service: str, kind: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and s.service == service and s.kind == kind]
    assert len(found) == 1, (name, service, kind, [(s.name, s.service, s.kind) for s in spans])
    return found[0]


def assert_chain(spans: list[ReceivedSpan], chain: list[ReceivedSpan]) -> None:
    """Each span of ``chain`` descends from the one before it."""
    for parent, child in itertools.pairwise(chain):
        assert parent in ancestors(child, spans), f"{child.name} is not under {parent.name}"


async def whole_trace(receiver: Receiver, event_id: str, needed: set[str]) -> list[ReceivedSpan]:
    """The one trace tagged ``event_id``, once it holds every span name in ``needed``."""

    def ready() -> list[ReceivedSpan] | None:
        tagged = receiver.tagged(event_id)
        if not tagged or not needed <= {s.name for s in tagged}:
            return None
        return tagged

    try:
        tagged = await wait_until(ready, 60, interval=0.1)
    except AssertionError:
        seen = {(s.service, s.name, s.attributes.get("aspri.event_id")) for s in receiver.spans}
        raise AssertionError(f"no whole trace for {event_id}; received: {seen}") from None
    (trace_id,) = {s.trace_id for s in tagged}
    spans = receiver.trace(trace_id)
    untagged = [s.name for s in spans if s.attributes.get("aspri.event_id") != event_id]
    assert not untagged, f"spans of the trace without aspri.event_id={event_id}: {untagged}"
    return spans


def save(spans: list[ReceivedSpan], name: str, title: str) -> None:
    """Keep the checked trace (``python -m tests.trace_figure`` draws it; docs/ shows one)."""
    body = {"title": title, "spans": [dataclasses.asdict(s) for s in spans]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(body, indent=1))


def moved(before: dict[str, float], after: dict[str, float], sample: str) -> float:
    return after.get(sample, 0.0) - before.get(sample, 0.0)


async def test_one_message_is_one_trace_from_the_web_chat_to_the_reply(system: System) -> None:
    before = await system.metrics()
    with suppress_instrumentation():  # another test may have instrumented httpx in this process
        sent = await system.http.post(
            f"{system.whatsapp}/api/local/messages",
            json={"from": "6281100000001", "name": "Ann", "text": "what jobs do I have?"},
        )
    assert sent.status_code == 202, sent.text
    event_id = sent.json()["data"]["eventId"]
    spans = await whole_trace(
        system.receiver,
        event_id,
        {
            "POST /api/local/messages",
            "whatsapp:messages publish",
            "whatsapp:messages process",
            "turn",
            "tools/call cronjob_list",
            "GET /api/jobs",
            "send message",
            "POST /api/send-message",
            "whatsapp send",
            "local send_text",
        },
    )
    assert {"aspri-whatsapp", "aspri-engine", "aspri-mcp", "aspri-cron"} <= {
        s.service for s in spans
    }
    request = one(spans, "POST /api/local/messages", "aspri-whatsapp", "SERVER")
    publish = one(spans, "whatsapp:messages publish", "aspri-whatsapp", "PRODUCER")
    consume = one(spans, "whatsapp:messages process", "aspri-engine", "CONSUMER")
    turn = one(spans, "turn", "aspri-engine", "INTERNAL")
    llm = [s for s in spans if s.name == f"chat {MODEL}"]
    tool = one(spans, "tools/call cronjob_list", "aspri-engine", "CLIENT")
    tool_server = one(spans, "tools/call cronjob_list", "aspri-mcp", "SERVER")
    cron_request = one(spans, "GET /api/jobs", "aspri-cron", "SERVER")
    reply = one(spans, "send message", "aspri-engine", "CLIENT")  # not through MCP
    send_request = one(spans, "POST /api/send-message", "aspri-whatsapp", "SERVER")
    send = one(spans, "whatsapp send", "aspri-whatsapp", "CLIENT")
    channel = one(spans, "local send_text", "aspri-whatsapp", "CLIENT")

    assert request.parent_id == ""  # the trace starts at the web chat request
    assert_chain(spans, [request, publish, consume, turn, llm[0]])
    assert_chain(spans, [turn, tool, tool_server, cron_request])
    assert_chain(spans, [turn, reply, send_request, send, channel])
    assert consume.parent_id == publish.span_id and consume.links == (publish.span_id,)
    assert consume.attributes["messaging.system"] == "redis"
    assert consume.attributes["messaging.destination.name"] == "whatsapp:messages"
    assert consume.attributes["messaging.message.id"]
    assert len(llm) == 2 and llm[0].end_ns <= tool.start_ns <= tool.end_ns <= llm[1].start_ns
    for call in llm:
        assert call.kind == "CLIENT" and call.service == "aspri-engine"
        assert call.attributes["gen_ai.system"] == "openai"
        assert call.attributes["gen_ai.request.model"] == MODEL
        assert call.attributes["gen_ai.usage.input_tokens"] == 11
        assert call.attributes["gen_ai.usage.output_tokens"] == 7
    assert not [s.name for s in spans if s.error]
    save(
        spans, "trace-message", "One web chat message: gateway → engine → model → MCP tool → reply"
    )

    after = await system.metrics()
    engine_b, engine_a = before["engine"], after["engine"]
    agent = "agent=ai-engine/whatsapp:messages/_converse"
    assert moved(engine_b, engine_a, f"aspri_events_processed_total{{{agent}}}") >= 1
    assert moved(engine_b, engine_a, f"aspri_event_processing_seconds_count{{{agent}}}") >= 1
    llm_labels = f"model={MODEL},provider=openai"
    assert moved(engine_b, engine_a, f"aspri_llm_request_seconds_count{{{llm_labels}}}") == 2
    assert moved(engine_b, engine_a, f"aspri_llm_request_seconds_sum{{{llm_labels}}}") > 0
    tokens = f"aspri_llm_tokens_total{{direction=input,{llm_labels}}}"
    assert moved(engine_b, engine_a, tokens) == 22
    assert moved(engine_b, engine_a, "aspri_tool_calls_total{tool=cronjob_list}") == 1
    assert moved(engine_b, engine_a, "aspri_tool_calls_total{tool=whatsapp_send_message}") == 1
    assert engine_a["aspri_sessions_active{}"] >= 1
    wa_b, wa_a = before["whatsapp"], after["whatsapp"]
    assert moved(wa_b, wa_a, "aspri_sends_total{channel=local}") == 1
    assert moved(wa_b, wa_a, "aspri_stream_length{stream=whatsapp:messages}") == 1


async def test_a_cron_fire_is_one_trace_from_the_scheduler_to_the_reply(system: System) -> None:
    before = await system.metrics()
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    created = await system.http.post(
        f"{system.cron}/api/jobs",
        json={
            "name": "stretch",
            "runAt": run_at.isoformat(),
            "payload": {"chatId": "6281100000002@c.us", "prompt": "Remind me to stretch"},
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()["data"]
    scheduled = int(datetime.fromisoformat(job["runAt"]).timestamp() * 1000)
    event_id = trigger_event_id(job["jobId"], scheduled)
    spans = await whole_trace(
        system.receiver,
        event_id,
        {
            "scheduler fire",
            "cronjob:events publish",
            "cronjob:events process",
            "turn",
            f"chat {MODEL}",
            "send message",
            "whatsapp send",
        },
    )
    assert {"aspri-scheduler", "aspri-engine", "aspri-whatsapp"} <= {s.service for s in spans}
    fire = one(spans, "scheduler fire", "aspri-scheduler", "INTERNAL")
    publish = one(spans, "cronjob:events publish", "aspri-scheduler", "PRODUCER")
    consume = one(spans, "cronjob:events process", "aspri-engine", "CONSUMER")
    turn = one(spans, "turn", "aspri-engine", "INTERNAL")
    llm = one(spans, f"chat {MODEL}", "aspri-engine", "CLIENT")
    reply = one(spans, "send message", "aspri-engine", "CLIENT")  # not through MCP
    send = one(spans, "whatsapp send", "aspri-whatsapp", "CLIENT")
    assert fire.parent_id == ""  # a fire starts a trace of its own
    assert_chain(spans, [fire, publish, consume, turn, llm])
    assert_chain(spans, [turn, reply, send])
    assert consume.links == (publish.span_id,)
    save(spans, "trace-cron", "One cron fire: scheduler → engine → model → send")

    async def fired() -> bool:
        after = await system.metrics()
        return moved(before["scheduler"], after["scheduler"], "aspri_scheduler_fires_total{}") >= 1

    await wait_until(fired, 10)
    after = await system.metrics()
    sched_b, sched_a = before["scheduler"], after["scheduler"]
    assert moved(sched_b, sched_a, "aspri_scheduler_fire_delay_seconds_count{}") == 1
    assert 0 <= moved(sched_b, sched_a, "aspri_scheduler_fire_delay_seconds_sum{}") < 5
    assert sched_a["aspri_scheduler_jobs{}"] >= 1
    agent = "agent=ai-engine/cronjob:events/_on_triggers"
    assert moved(before["engine"], after["engine"], f"aspri_events_processed_total{{{agent}}}") == 1

"""The process's Prometheus instruments, updated as events flow (``/metrics`` renders them).

Label sets are bounded: agents, providers, models and channels are a handful per deployment;
tool names are the server's fourteen (anything else a model invents counts as ``other``). Chat
ids, event ids and error texts never become labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

PROCESS = CollectorRegistry()
"""Counters of what this process decided (the gateways render them after the stream metrics;
the engine and the scheduler serve them on ``METRICS_PORT``)."""
ProcessCollector(registry=PROCESS)  # CPU seconds, memory, open files of this process

TOOLS = frozenset(
    {
        "whatsapp_send_message",
        "whatsapp_get_messages",
        "whatsapp_get_chats",
        "whatsapp_search_contacts",
        "cronjob_create",
        "cronjob_list",
        "cronjob_get",
        "cronjob_update",
        "cronjob_delete",
        "cronjob_start",
        "cronjob_stop",
        "memory_save",
        "memory_forget",
        "memory_search",
    }
)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

EVENTS_PROCESSED = Counter(
    "aspri_events_processed", "Events an agent's handler finished", ["agent"], registry=PROCESS
)
EVENTS_FAILED = Counter(
    "aspri_events_failed",
    "Handler runs that raised or timed out (the event is retried, then dead-lettered)",
    ["agent"],
    registry=PROCESS,
)
EVENTS_REDELIVERED = Counter(
    "aspri_events_redelivered",
    "Events handed to a handler again (delivery count above one)",
    ["agent"],
    registry=PROCESS,
)
PROCESSING_SECONDS = Histogram(
    "aspri_event_processing_seconds",
    "Time an agent's handler spent on one event",
    ["agent"],
    buckets=_LATENCY,
    registry=PROCESS,
)
LLM_SECONDS = Histogram(
    "aspri_llm_request_seconds",
    "One model call, request to full answer",
    ["provider", "model"],
    buckets=_LATENCY,
    registry=PROCESS,
)
LLM_ERRORS = Counter(
    "aspri_llm_errors", "Model calls that failed", ["provider", "model"], registry=PROCESS
)
LLM_TOKENS = Counter(
    "aspri_llm_tokens",
    "Tokens the provider reported, by direction (input or output)",
    ["provider", "model", "direction"],
    registry=PROCESS,
)
TOOL_CALLS = Counter("aspri_tool_calls", "MCP tool calls by tool", ["tool"], registry=PROCESS)
TOOL_ERRORS = Counter(
    "aspri_tool_errors",
    "MCP tool calls that returned an error or were refused",
    ["tool"],
    registry=PROCESS,
)
SESSIONS_ACTIVE = Gauge(
    "aspri_sessions_active",
    "Chat sessions this worker holds with a message inside SESSION_TIMEOUT_MINUTES",
    registry=PROCESS,
)
SCHEDULER_JOBS = Gauge(
    "aspri_scheduler_jobs", "Jobs in the registry the scheduler folds", registry=PROCESS
)
SCHEDULER_JOBS_PLANNED = Gauge(
    "aspri_scheduler_jobs_planned",
    "Jobs with a next run planned (running and plannable)",
    registry=PROCESS,
)
SCHEDULER_FIRES = Counter(
    "aspri_scheduler_fires", "Triggers the scheduler wrote (runs fired)", registry=PROCESS
)
FIRE_DELAY_SECONDS = Histogram(
    "aspri_scheduler_fire_delay_seconds",
    "How late a run was fired after its scheduled time",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=PROCESS,
)
SENDS = Counter(
    "aspri_sends", "Message parts the gateway sent, by channel", ["channel"], registry=PROCESS
)
SEND_FAILURES = Counter(
    "aspri_send_failures",
    "Message parts the channel refused or could not send",
    ["channel"],
    registry=PROCESS,
)


def tool_label(name: str) -> str:
    """``name`` when it is one of the server's tools, else ``other``."""
    return name if name in TOOLS else "other"

"""Versioned event schemas: payload structs, the envelope and the registry."""

from aspri.schemas.envelope import Event, UndecodableEvent, new_event_id, now_ms
from aspri.schemas.events import CronTrigger, Payload, WhatsAppMessage
from aspri.schemas.registry import REGISTRY, Registry

# Each module registers its event types with REGISTRY on import.
from aspri.schemas import access, chat, cron, identity, memory, status  # noqa: F401  isort: skip

__all__ = [
    "REGISTRY",
    "CronTrigger",
    "Event",
    "Payload",
    "Registry",
    "UndecodableEvent",
    "WhatsAppMessage",
    "new_event_id",
    "now_ms",
]

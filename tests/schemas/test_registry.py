"""The versioned registry: seed-format entries, upcasters, unknown types."""

from __future__ import annotations

import msgspec
import pytest

from aspri.schemas import REGISTRY, CronTrigger, Registry, UndecodableEvent, WhatsAppMessage
from aspri.schemas.events import Payload


def seed_entry() -> dict[bytes, bytes]:
    """An entry exactly as the original TypeScript service wrote it: no v, no traceparent."""
    data = (
        b'{"id":"false_1555@c.us_ABC","chatId":"1555@c.us","from":"1555@c.us",'
        b'"fromName":"Ann","body":"hello","type":"chat","timestamp":1700000000,'
        b'"isGroup":false,"fromMe":false,"hasMedia":false,"extraFieldFromTs":1}'
    )
    return {
        b"eventId": b"6f1c0d6e-1111-4a4a-8888-000000000001",
        b"type": b"whatsapp:message",
        b"source": b"whatsapp",
        b"timestamp": b"1700000000123",
        b"data": data,
    }


def test_seed_format_entry_decodes_as_v1_brought_up_to_v2() -> None:
    event = REGISTRY.from_fields(seed_entry(), entry_id="1-0", stream="whatsapp:messages")
    assert event.v == 2
    assert event.data.media is None
    assert event.traceparent is None
    assert isinstance(event.data, WhatsAppMessage)
    assert event.data.chat_id == "1555@c.us"
    assert event.data.from_ == "1555@c.us"
    assert event.data.from_name == "Ann"
    assert event.data.quoted_message_id is None  # optional field defaulted
    assert event.timestamp == 1700000000123


def test_round_trip_keeps_every_envelope_field() -> None:
    payload = CronTrigger(job_id="j1", job_name="daily", scheduled_time=5, payload={"a": [1]})
    event = REGISTRY.event(payload, source="cronjob", causation_id="cause", traceparent="00-ab")
    fields = REGISTRY.to_fields(event)
    assert fields["v"] == "1"
    assert b'"jobId":"j1"' in fields["data"]  # type: ignore[operator]
    back = REGISTRY.from_fields(fields)
    assert back.data == payload
    assert (back.causation_id, back.traceparent, back.source) == ("cause", "00-ab", "cronjob")


class NoteV1(Payload, frozen=True, kw_only=True):
    text: str


class NoteV2(Payload, frozen=True, kw_only=True):
    title: str
    words: int = 0


def test_upcaster_turns_a_stored_v1_into_v2() -> None:
    registry = Registry()
    registry.register("note", NoteV1, version=1)
    old = registry.to_fields(registry.event(NoteV1(text="buy milk now")))
    registry.register("note", NoteV2, version=2)

    @registry.upcaster("note", 1)
    def v1_to_v2(raw: dict[str, object]) -> dict[str, object]:
        text = str(raw.pop("text"))
        return {"title": text, "words": len(text.split())}

    event = registry.from_fields(old)
    assert event.v == 2
    assert event.data == NoteV2(title="buy milk now", words=3)
    assert registry.to_fields(registry.event(NoteV2(title="x")))["v"] == "2"


def test_missing_upcaster_and_future_versions_are_undecodable() -> None:
    registry = Registry()
    registry.register("note", NoteV2, version=2)
    fields = {"type": "note", "v": "1", "data": '{"text":"x"}'}
    with pytest.raises(UndecodableEvent, match="no upcaster"):
        registry.from_fields(fields)
    with pytest.raises(UndecodableEvent, match="not supported"):
        registry.from_fields({**fields, "v": "3"})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "nope", "data": "{}"}, "unknown event type"),
        ({"data": "{}"}, "missing field type"),
        ({"type": "whatsapp:message", "data": "{not json"}, "JSON"),
        ({"type": "whatsapp:message", "data": '{"id": 5}'}, "Expected `str`"),
    ],
)
def test_bad_entries_say_why(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(UndecodableEvent) as info:
        REGISTRY.from_fields(fields)
    assert reason in info.value.reason
    assert info.value.fields == fields


def test_payloads_are_frozen() -> None:
    msg = WhatsAppMessage(id="1", chat_id="c", from_="f")
    with pytest.raises(AttributeError):
        msg.body = "changed"  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(msg), type=WhatsAppMessage) == msg

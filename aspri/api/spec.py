"""The OpenAPI document both gateways publish, completed where Litestar's generator stops short.

- Every operation documents its errors as the envelope (``Failure``): Litestar describes a 400
  with its own ``{status_code, detail}`` shape, which these gateways never send, and leaves
  401/403/408/413/415/421/503 undocumented.
- String fields say what they hold with a ``format`` (``phone``, ``cron``, ``timezone``), so a
  client or a test generator knows what a valid value looks like.
- Operations that create something link to the ones that use it (OpenAPI links), so a
  generated test can follow a created job or chat.
- The live stream is documented as ``text/event-stream``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aspri.schemas.api import Failure

Link = tuple[str, str, str, dict[str, str]]
"""(method, path of the producer, method + " " + path of the consumer, parameters)."""

ERRORS = {
    "400": "A field is invalid; the message names it and says how to fix it.",
    "401": "No valid API key: send X-API-Key or Authorization: Bearer.",
    "403": "The key may not do this (e.g. an idempotency key reserved for the engine).",
    "408": "The request body did not arrive in time.",
    "413": "The body is too large.",
    "415": "The body is not application/json.",
    "421": "The Host header is not a name of this service.",
    "4XX": "Any other client error, as the envelope.",
    "5XX": "The event log or the channel is unavailable (503, with Retry-After), or a bug.",
}
FORMATS = {
    "phoneNumber": "phone",
    "from": "phone",
    "phone_number": "phone",
    "chatId": "phone",
    "schedule": "cron",
    "timezone": "timezone",
    "runAt": "date-time",
}
"""Request fields (body properties and parameters) by name, and the format of their value."""
METHODS = ("get", "put", "post", "delete", "patch")


def _failure_components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Failure], ref_template="#/components/schemas/{name}"
    )
    return components


def complete(schema: dict[str, Any], links: list[Link]) -> None:
    """Complete ``schema`` (the served OpenAPI dict) in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, body in _failure_components().items():
        components.setdefault(name, body)
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}}
    request_bodies = {name for name in components if name.endswith(("Request", "Create", "Update"))}
    for name in request_bodies:
        for field, body in components[name].get("properties", {}).items():
            if field in FORMATS:
                _add_format(body, FORMATS[field])
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            public = operation.get("security") == [{}]
            responses = operation.setdefault("responses", {})
            for status, meaning in ERRORS.items():
                if status == "401" and public:
                    continue
                if status == "400" or status not in responses:
                    responses[status] = {"description": meaning, "content": envelope}
            for parameter in operation.get("parameters", []):
                if parameter.get("name") in FORMATS and "schema" in parameter:
                    _add_format(parameter["schema"], FORMATS[parameter["name"]])
            if path.endswith("/events") and "200" in responses:
                responses["200"]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    _link(schema, links)


def _add_format(body: dict[str, Any], value: str) -> None:
    if body.get("type") == "string":
        body["format"] = value
    for option in body.get("oneOf", []):
        if option.get("type") == "string":
            option["format"] = value


def _link(schema: dict[str, Any], links: list[Link]) -> None:
    paths = schema.get("paths", {})
    for method, path, consumer, parameters in links:
        producer = paths.get(path, {}).get(method)
        target_method, target_path = consumer.split(" ", 1)
        target = paths.get(target_path, {}).get(target_method)
        if producer is None or target is None:
            continue
        for status, response in producer.get("responses", {}).items():
            if status.startswith("2"):
                name = target["operationId"]
                response.setdefault("links", {})[name] = {
                    "operationId": name,
                    "parameters": parameters,
                }

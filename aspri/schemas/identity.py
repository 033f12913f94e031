"""Events of ``identity:events``: which id forms name one person.

A person's id is their phone's chat id (``<E.164 digits>@c.us``): the Cloud API's ``wa_id``,
a web-chat number and WhatsApp Web's ``@c.us`` id all normalise to it. WhatsApp Web may show a
sender only by a hidden linked id (``…@lid``); when wa-js knows its phone number, the gateway
records the pair once, so every worker folds the same mapping and a restart loses nothing.
"""

from __future__ import annotations

from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY


class IdentityLinked(Payload, frozen=True, kw_only=True):
    """``identity:linked`` v1: ``alias`` (an ``@lid`` id) is the person ``person`` (an ``@c.us``
    id). A later link of the same alias wins (a number moved to another account)."""

    alias: str
    person: str
    source: str = ""
    """The channel engine that resolved it (``browser``: WhatsApp Web's own LID/phone mapping,
    read through wa-js)."""


REGISTRY.register("identity:linked", IdentityLinked)

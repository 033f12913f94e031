"""Events of ``access:events``: who, besides the owners, the assistant obeys.

Approvals, revocations, allowlisted groups and pairing codes are events like every other fact,
so the engine's fold of this one stream is the same on every worker and survives restarts.
``by`` names who decided: an owner's chat id, or ``config``/``api`` for other writers.
"""

from __future__ import annotations

from aspri.schemas.events import Payload
from aspri.schemas.registry import REGISTRY


class ContactAllowed(Payload, frozen=True, kw_only=True):
    """``access:contact-allowed`` v1: this person may talk to the assistant from now on."""

    chat_id: str
    by: str
    code: str | None = None
    """The pairing code the owner approved (``/pair``), or None (``/allow``)."""


class ContactRevoked(Payload, frozen=True, kw_only=True):
    """``access:contact-revoked`` v1: this person is a stranger again."""

    chat_id: str
    by: str


class GroupAllowed(Payload, frozen=True, kw_only=True):
    """``access:group-allowed`` v1: the assistant answers in this group when addressed."""

    chat_id: str
    by: str


class GroupRevoked(Payload, frozen=True, kw_only=True):
    """``access:group-revoked`` v1: this group is ignored again."""

    chat_id: str
    by: str


class PairingRequested(Payload, frozen=True, kw_only=True):
    """``access:pairing-requested`` v1: a stranger was given ``code``; an owner's ``/pair
    <code>`` before ``expiresAt`` (Unix ms) admits them."""

    chat_id: str
    code: str
    cause: str
    """The eventId of the stranger's message that got the code (its notice's cause)."""
    expires_at: int
    name: str | None = None


class AccountLinked(Payload, frozen=True, kw_only=True):
    """``access:account-linked`` v1: the WhatsApp account the browser engine is logged in as
    (seen when it wrote in its own chat); it is an owner."""

    chat_id: str


REGISTRY.register("access:contact-allowed", ContactAllowed)
REGISTRY.register("access:contact-revoked", ContactRevoked)
REGISTRY.register("access:group-allowed", GroupAllowed)
REGISTRY.register("access:group-revoked", GroupRevoked)
REGISTRY.register("access:pairing-requested", PairingRequested)
REGISTRY.register("access:account-linked", AccountLinked)

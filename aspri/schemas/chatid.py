"""WhatsApp chat ids: ``<digits>@c.us`` for people, ``<digits>[-<digits>]@g.us`` for groups.

Clients may give a phone number in any common notation (``+62 812-3456-7890``, ``0062...``);
every part of ASPRI works with the normalised chat id, so one person has one chat stream
whatever way their number was written.
"""

from __future__ import annotations

import re

_CHAT_ID = re.compile(r"^(\d{5,20})@(c\.us|s\.whatsapp\.net|lid)$")
_GROUP_ID = re.compile(r"^\d{5,20}(-\d{5,20})?@g\.us$")
_SEPARATORS = re.compile(r"[\s\-.()/]")


class InvalidChatId(ValueError):
    """Not a phone number or chat id; the message says what is wrong."""


def normalize(value: str) -> str:
    """The chat id for a phone number or chat id; raise InvalidChatId when it is neither."""
    raw = value.strip()
    if not raw:
        raise InvalidChatId("is empty; give a phone number with country code or a chat id")
    if "@" in raw:
        if _GROUP_ID.match(raw):
            return raw
        match = _CHAT_ID.match(raw)
        if match is None:
            raise InvalidChatId(f"{value!r} is not a chat id like 6281234567890@c.us")
        suffix = "lid" if match.group(2) == "lid" else "c.us"
        return f"{match.group(1)}@{suffix}"
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise InvalidChatId(f"{value!r} is not a phone number (only digits, spaces, +, - allowed)")
    if digits.startswith("0"):
        raise InvalidChatId(f"{value!r} lacks the country code (e.g. +62 812 3456 7890)")
    if not 7 <= len(digits) <= 15:
        raise InvalidChatId(f"{value!r} has {len(digits)} digits; a phone number has 7 to 15")
    return f"{digits}@c.us"


def number(chat_id: str) -> str:
    """The digits of a chat id (``6281234567890@c.us`` → ``6281234567890``)."""
    return chat_id.split("@", 1)[0]


def is_group(chat_id: str) -> bool:
    return chat_id.endswith("@g.us")

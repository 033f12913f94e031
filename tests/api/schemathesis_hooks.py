"""Data schemathesis cannot invent by itself, registered for the string formats the gateways'
OpenAPI documents use (``SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks``): phone numbers in
the notations people write, cron expressions, IANA time zones. With them, generated requests
reach the stateful operations (a job that exists, a chat that has messages) instead of 400s."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

_SEPARATOR = st.sampled_from(["", "", " ", "-", "."])


@st.composite
def _phone(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["62", "1", "44", "49", "91", "65"]))
    rest = draw(st.text("0123456789", min_size=7, max_size=10))
    digits = country + rest
    if draw(st.booleans()):
        return f"{digits}@c.us"
    prefix = draw(st.sampled_from(["", "+", "00"]))
    sep = draw(_SEPARATOR)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return prefix + sep.join(groups)


_CRON = st.builds(
    lambda minute, hour, dom, month, dow: f"{minute} {hour} {dom} {month} {dow}",
    st.sampled_from(["0", "15", "30", "*/5", "0,30"]),
    st.sampled_from(["*", "8", "9-17", "*/2"]),
    st.sampled_from(["*", "1", "15", "1-10"]),
    st.sampled_from(["*", "1", "6", "1-6"]),
    st.sampled_from(["*", "1-5", "0", "MON"]),
)

schemathesis.openapi.format("phone", _phone())
schemathesis.openapi.format("cron", _CRON)
schemathesis.openapi.format(
    "timezone", st.sampled_from(["UTC", "Asia/Jakarta", "Europe/Berlin", "America/New_York"])
)

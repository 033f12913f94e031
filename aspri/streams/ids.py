"""Stream entry ids ("<ms>-<seq>") compared as numbers, not strings."""

from __future__ import annotations


def parse(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def after(a: str, b: str) -> bool:
    """True when ``a`` is a later entry than ``b``."""
    return parse(a) > parse(b)

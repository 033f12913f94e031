"""Split a long text into messages a channel accepts, at the most natural break available."""

from __future__ import annotations

_BREAKS = ("\n\n", "\n", ". ", "! ", "? ", " ")


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most ``limit`` characters, cut at a paragraph, line, sentence or word
    boundary in the second half of a part when there is one, else hard at the limit."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = 0
        for brk in _BREAKS:
            at = window.rfind(brk)
            if at >= limit // 2:
                cut = at + len(brk)
                break
        if cut == 0:
            cut = limit
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    if rest.strip() or not parts:
        parts.append(rest)
    return parts

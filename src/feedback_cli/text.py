"""Text helpers for the lines a person reads (the whole text goes to the trace)."""

from __future__ import annotations

#: a provider message in an error line; longer ones are cut (the trace keeps them whole)
LINE_LIMIT = 240


def shorten(text: str, limit: int = LINE_LIMIT) -> str:
    """One line of at most about `limit` characters, cut at a word boundary and marked with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit + 1]
    space = cut.rfind(" ")
    # at the last word boundary, unless that is far back (one very long word is cut inside)
    cut = cut[:space] if space >= limit // 2 else cut[:limit]
    return cut.rstrip(" ,;:.-") + "…"

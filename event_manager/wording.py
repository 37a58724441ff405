"""Numbers in messages: "1 attempt", "2 attempts", never "1 attempts"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is 1 (``plural``: when it is not
    ``noun`` + "s")."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"

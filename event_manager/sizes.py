"""Sizes as people read them, and text cut to a fixed length that says it was cut.

Whatever a delivery shows (a row's message, a response snippet, a request summary) or
logs has a fixed bound, however large what it describes::

    size_text(214_745_088)               → "204.8 MiB"
    cut("x" * 20_127_744, 40)            → "xxxxxxxxxxxxxxxx… [cut, 19.2 MiB in all]"
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB


def utf8_size(text: str) -> int:
    """Bytes ``text`` takes in UTF-8 (a lone surrogate counts as the one "?" it is sent as)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def size_text(size: int) -> str:
    """``1`` → "1 byte", ``512`` → "512 bytes", ``8192`` → "8 KiB", ``1_100_000`` →
    "1.0 MiB"."""
    if size < KIB:
        return f"{size} byte{'' if size == 1 else 's'}"
    unit, name = (MIB, "MiB") if size >= MIB else (KIB, "KiB")
    shown = f"{size / unit:.1f}"
    return f"{shown.removesuffix('.0') if size % unit == 0 else shown} {name}"


def cut(text: str, limit: int, total: int | None = None, more: bool = False) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and a note of the
    whole size, ``limit`` characters in all: "… [cut, 19.2 MiB in all]". ``total`` is the
    size of what ``text`` was taken from, when that was larger (a response read in part);
    ``more`` says that there was more than ``text`` without knowing how much ("… [cut,
    more than 16 KiB in all]")."""
    if total is not None and total <= utf8_size(text):
        total = None  # not larger after all (a compressed body's Content-Length)
    if len(text) <= limit and not more and total is None:
        return text
    size = size_text(utf8_size(text) if total is None else total)
    note = f"… [cut, {'more than ' if more and total is None else ''}{size} in all]"
    return text[:max(limit - len(note), 0)] + note

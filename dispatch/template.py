"""``{{tag}}`` placeholders: how they are written and which tags a text uses.

A placeholder is a tag between double curly brackets, with optional spaces inside:
``{{caller_id}}`` and ``{{ caller_id }}`` are the same. Tags are letters, digits,
``_``, ``.`` and ``-`` (Postman variable names fit), at most 64 characters. Case does
not matter: ``{{CALLER_ID}}`` is ``caller_id``, as a parameter's tag is unique
regardless of case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TAG = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}"
PLACEHOLDER = re.compile(r"\{\{\s*(" + TAG + r")\s*\}\}")


def tags_in(texts: Iterable[str | None]) -> list[str]:
    """Tags used in ``texts``, each once whatever its case, as first written, in order of
    first use: ``{{Team}} {{team}} {{x}}`` → ``["Team", "x"]``."""
    seen: dict[str, str] = {}
    for text in texts:
        if text:
            for match in PLACEHOLDER.finditer(text):
                seen.setdefault(match.group(1).casefold(), match.group(1))
    return list(seen.values())


def is_only_placeholders(text: str) -> bool:
    """True for ``{{token}}`` or ``{{a}}:{{b}}``-free forms like ``{{ a }}{{b}}``: one or
    more placeholders with nothing but whitespace around them. Linear in the text's
    length (a single pattern of repeated placeholders and whitespace backtracks
    exponentially on ``{{a}}  `` repeated and then ``!``)."""
    rest, found = PLACEHOLDER.subn("", text)
    return found > 0 and not rest.strip()

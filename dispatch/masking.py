"""Masking secrets in every form they can take on the way out.

A secret rendered into a request is encoded for where it lands, and what comes back (an
error naming the URL, a receiver echoing the request) may carry it encoded once more.
``Masker`` finds a secret whatever mix of these forms its characters take:

    raw                        p@ss word
    percent-encoded            p%40ss%20word   p%40ss+word (form)   p@ss%20word (yarl)
    either case                p%40SS%2fX      p%40ss%2Fx            (hosts are lower-cased)
    JSON-escaped               \\"q\\" \\u00e9 \\/         XML-escaped  &lt;b&gt; &#38;
    a header's control chars   a b  (CR LF and others became spaces)

so ``Masker(["p@ss word"])("bad URL 'http://h/p%40ss%20word'")`` gives
``"bad URL 'http://h/********'"``. The base64 of Basic auth's ``user:pass`` is a secret
of its own (``RenderedRequest.secrets`` holds it). Matching ignores case and takes "+"
and a space for each other: hiding a little too much is the safe side.

The text is decoded once into one character per token (``%E2%98%8E`` is one token),
and each secret is looked for with ``str.find``: linear in the text, however the
secret and the text are made (a pattern per secret would be quadratic on "aaa…").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache

MASK = "********"
ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+"
                    r"|\\u[dD][89abAB][0-9A-Fa-f]{2}\\u[dD][c-fC-F][0-9A-Fa-f]{2}"  # a pair
                    r"|\\u[0-9A-Fa-f]{4}|\\[\"\\/bfnrt]"
                    r"|&(?:#[xX][0-9A-Fa-f]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);")
ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# "+" is a form-encoded space; control characters other than TAB become spaces in a header.
SPACES = str.maketrans({c: " " for c in ["+", *map(chr, [*range(0, 9), *range(10, 32), 127])]})


def _utf8_chars(data: bytes) -> list[tuple[str, int]]:
    """Characters of percent-decoded bytes, each with how many bytes it took; a byte
    that starts no valid UTF-8 sequence stands for itself (Latin-1)."""
    out, i = [], 0
    while i < len(data):
        first = data[i]
        length = 1 if first < 0x80 else 2 if first >> 5 == 6 else 3 if first >> 4 == 14 \
            else 4 if first >> 3 == 30 else 1
        try:
            out.append((data[i:i + length].decode("utf-8"), length))
        except UnicodeDecodeError:
            out.append((chr(first), length := 1))
        i += length
    return out


def _escape(token: str) -> list[tuple[str, int]]:
    """The characters one escape stands for, each with its length in the text."""
    if token[0] == "%":
        return [(char, 3 * n) for char, n in _utf8_chars(bytes.fromhex(token.replace("%", "")))]
    if token[0] == "\\":
        return [(json.loads(f'"{token}"'), len(token))]
    name = token[1:-1].lower()
    if name in ENTITIES:
        return [(ENTITIES[name], len(token))]
    code = int(name[2:], 16) if name.startswith("#x") else int(name[1:])
    return [(chr(min(code, 0x10FFFF)), len(token))]


def decode(text: str) -> tuple[str, list[int]]:
    """``text`` with every escape decoded, and where each decoded character starts in it
    (one more entry: the end). ``"a%40b"`` → ``("a@b", [0, 1, 4, 5])``."""
    chars: list[str] = []
    starts: list[int] = []
    position = 0
    for match in ESCAPE.finditer(text):
        chars.append(text[position:match.start()])
        starts.extend(range(position, match.start()))
        at = match.start()
        for char, length in _escape(match.group()):
            chars.append(char)
            starts.append(at)
            at += length
        position = match.end()
    chars.append(text[position:])
    starts.extend(range(position, len(text) + 1))
    return "".join(chars), starts


def canonical(text: str) -> str:
    """Lower case and "+"/control characters as spaces, one character for one."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower to two ("İ")
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lowered.translate(SPACES)


class Masker:
    """Replaces each of ``secrets`` (empty ones ignored), in any of its forms, by the mask."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found = {s for secret in secrets if secret for s in (secret, secret.strip()) if s}
        self.secrets = sorted({canonical(s) for s in found}, key=len, reverse=True)
        # As written, and as the text would read it (a secret that holds "%41" itself).
        self.decoded = sorted({canonical(form) for s in found
                               for form in (s, decode(s)[0]) if form}, key=len, reverse=True)
        self.either = sorted({*self.secrets, *self.decoded}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __call__(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        spans: list[tuple[int, int]] = []
        plain = canonical(text)
        if ESCAPE.search(text) is None:  # nothing to decode: the text reads as written
            for secret in self.either:
                spans += _found(plain, secret)
            return _replace(text, spans)
        for secret in self.secrets:  # as written, wherever it starts (even after a "%")
            spans += _found(plain, secret)
        decoded, starts = decode(text)
        decoded = canonical(decoded)
        for secret in self.decoded:
            spans += _found(decoded, secret, starts)
        return _replace(text, spans)


def _found(haystack: str, needle: str,
           starts: list[int] | None = None) -> list[tuple[int, int]]:
    """Spans of ``needle`` in the original text (``starts`` maps ``haystack`` to it, when
    it is not the text itself), overlapping ones too ("aba" twice in "ababa"). Occurrences
    a period of the needle apart are followed without searching again, so "a" * 4096 in
    "a" * 100,000 takes one pass."""
    spans, period, at = [], _period(needle), haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        while haystack.startswith(needle[len(needle) - period:], end):
            end += period
        spans.append((starts[at], starts[end]) if starts is not None else (at, end))
        at = haystack.find(needle, end - len(needle) + 1)
    return spans


@lru_cache(maxsize=1024)
def _period(text: str) -> int:
    """The shortest period of ``text``: 1 for "aaaa", 2 for "ababa", 3 for "abcab"."""
    border = [0] * len(text)  # Knuth-Morris-Pratt's failure function
    for i in range(1, len(text)):
        k = border[i - 1]
        while k and text[i] != text[k]:
            k = border[k - 1]
        border[i] = k + (text[i] == text[k])
    return len(text) - border[-1]


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones merged) replaced by the mask."""
    out, position = [], 0
    for start, end in sorted(spans):
        if end <= position:
            continue
        if start >= position:
            out.append(text[position:start])
            out.append(MASK)
        position = end
    out.append(text[position:])
    return "".join(out)

"""Texts a client supplies are read in time linear in their length: the checks that
used patterns which backtrack (exponentially, or with the square of the length) on
crafted input, each against the pattern it replaced on ordinary and random input, and
on the crafted input with a bound far below what the old pattern would take."""

from __future__ import annotations

import json
import random
import re

import pytest

from dispatch.template import TAG, is_only_placeholders
from resolvers.postman import CollectionError, _unique_names, parse_collection, schema_version
from tests.support import finishes_within

V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

OLD_ONLY_PLACEHOLDERS = re.compile(r"^(?:\s*\{\{\s*" + TAG + r"\s*\}\}\s*)+$")
OLD_SCHEMA = re.compile(
    r"^https?://schema\.(?:get)?postman\.com/\S*?collection\S*?/v(\d+)\.(\d+)\.\d+(?:/|$)",
    re.IGNORECASE,
)


def fragments(rng: random.Random, parts: list[str], n: int) -> str:
    return "".join(rng.choice(parts) for _ in range(rng.randint(0, n)))


@pytest.mark.parametrize(("text", "expected"), [
    ("{{token}}", True), ("  {{ token }}\t", True), ("{{a}}{{b}}", True),
    ("{{a}} {{b.c-d}}\n", True), ("", False), ("   ", False), ("{{a}}:{{b}}", False),
    ("Bearer {{token}}", False), ("{{}}", False), ("{{a b}}", False), ("{{{a}}}", False),
    ("{{" + "a" * 64 + "}}", True), ("{{" + "a" * 65 + "}}", False), ("{{a}}\u00a0", True),
])
def test_only_placeholders(text: str, expected: bool) -> None:
    assert is_only_placeholders(text) is expected
    assert bool(OLD_ONLY_PLACEHOLDERS.match(text)) is expected


def test_only_placeholders_agrees_with_the_old_pattern_on_random_text() -> None:
    rng = random.Random(5)
    parts = ["{{", "}}", "{", "}", " ", "\t", "a", "b.c", "-", "_", ":", "!", "{{a}}", "\u00a0"]
    for _ in range(5000):
        text = fragments(rng, parts, 12)
        assert is_only_placeholders(text) == bool(OLD_ONLY_PLACEHOLDERS.match(text)), text


def test_only_placeholders_is_linear_on_the_input_that_froze_the_api() -> None:
    """``{{a}}  `` ×17 then ``!`` (120 characters) took the old pattern 11.5 s; every
    more repetition doubles it. 4,096 characters of it: at once."""
    text = ("{{a}}  " * 585) + "!"
    assert finishes_within(10, lambda: is_only_placeholders(text)) is False
    assert finishes_within(10, lambda: is_only_placeholders(text[:-1])) is True


def test_schema_version_agrees_with_the_old_pattern() -> None:
    known = [
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        "HTTP://SCHEMA.POSTMAN.COM/JSON/COLLECTION/V2.0.0",
        "https://schema.postman.com/collection/json/v2.1.0/draft-07/collection.json",
        "https://schema.getpostman.com/json/v2.1.0/collection/",
        "https://schema.getpostman.com/json/collection/v2.1.0x/",
        "https://schema.getpostman.com/json/coll ection/v2.1.0/",
        "https://schema.getpostman.com/json/collection/v2.1.0/ and more",
        "https://schema.getpostman.com/mycollections/v1.0.0",
        "https://example.com/json/collection/v2.1.0/",
    ]
    rng = random.Random(9)
    parts = ["/", "collection", "COLL", "json", "v2.1.0", "v1.0.0", "v2.1", "x", " ", ".", "7"]
    urls = known + [rng.choice(["https://schema.getpostman.com/", "http://schema.postman.com/"])
                    + fragments(rng, parts, 10) for _ in range(5000)]
    for url in urls:
        old = OLD_SCHEMA.match(url)
        assert schema_version(url) == (old.groups() if old else None), url


def test_a_long_schema_url_is_refused_in_linear_time() -> None:
    """A schema URL repeating "collection" (100 KB) took the old pattern 4.5 s to refuse,
    growing with the square of its length; 1 MB of it is refused at once."""
    schema = "https://schema.getpostman.com/" + "collection" * 100_000 + "/v2"
    document = json.dumps({"info": {"name": "x", "schema": schema}, "item": []})
    with pytest.raises(CollectionError, match="unknown schema"):
        finishes_within(10, lambda: parse_collection(document))


def old_unique_names(names: list[str]) -> list[str]:
    """resolvers.postman._unique_names as it was: each repeat counted from 2 again."""
    def capped(name: str, suffix: str) -> str:
        room = 100 - len(suffix)
        return (name if len(name) <= room else name[:room - 1].rstrip() + "…") + suffix

    used: set[str] = set()
    out = []
    for name in names:
        candidate, n = capped(name, ""), 1
        while candidate.casefold() in used:
            n += 1
            candidate = capped(name, f" ({n})")
        used.add(candidate.casefold())
        out.append(candidate)
    return out


def test_unique_names_agree_with_counting_from_two_each_time() -> None:
    """The same names as before, repeats, names that look like repeats ("A (2)"), case
    and names cut at 100 characters included."""
    rng = random.Random(3)
    pool = ["Get", "get", "GET", "Get (2)", "get (3)", "Post", "x" * 100, "x" * 120,
            "x" * 96 + " (2)", "Get (10)"]
    for _ in range(2000):
        names = [rng.choice(pool) for _ in range(rng.randint(0, 30))]
        assert _unique_names(names) == old_unique_names(names), names


def test_many_requests_of_one_name_are_named_in_linear_time() -> None:
    """8,000 requests named alike took 7.6 s (each counted its number from 2)."""
    names = finishes_within(10, lambda: _unique_names(["Ping"] * 50_000))
    assert names[:3] == ["Ping", "Ping (2)", "Ping (3)"] and names[-1] == "Ping (50000)"


def test_path_variables_are_replaced_in_one_pass_so_values_are_not_expanded_again() -> None:
    """Each variable was replaced in turn over the text earlier ones had put in: three
    variables of 200 ``/:x`` each made a 2 KB collection a 24 MB URL (a fourth: GB)."""
    def action_url(raw: str, variables: list[dict[str, str]]) -> tuple[str, list[str]]:
        (parsed,) = parse_collection(json.dumps({"info": {"name": "c", "schema": V21}, "item": [
            {"name": "r", "request": {"url": {"raw": raw, "variable": variables}}}]})).requests
        assert parsed.action is not None, parsed.problem
        return parsed.action["url"], parsed.warnings

    chain = [{"key": k, "value": f"/:{n}" * 200} for k, n in zip("abc", "bcd", strict=True)]
    assert action_url("https://e.com/:a", chain)[0] == "https://e.com/" + "/:b" * 200
    assert action_url("https://e.com/:id/items/:kind/:none", [
        {"key": "id", "value": "7"}, {"key": "kind", "value": "x\\y"}, {"key": "none"},
        {"key": "id", "value": "8"}]) == ("https://e.com/7/items/x\\y/:none",
                                          ["path variable ':none' has no value"])


def test_v1_requests_are_found_by_folder_without_a_scan_per_folder() -> None:
    """Each v1 folder without ``order`` scanned every request: 8,000 folders and 8,000
    requests took 11.5 s, 20,000 folders and 1,000 requests 4 s."""
    folders = [{"id": f"f{n}", "name": f"F{n}"} for n in range(40_000)]
    requests = [{"id": f"r{n}", "name": f"R{n}", "folder": f"f{n}", "url": "https://e.com",
                 "method": "GET"} for n in range(1_000)]
    doc = json.dumps({"id": "c", "name": "v1", "folders": folders, "requests": requests})
    parsed = finishes_within(4, lambda: parse_collection(doc))
    assert len(parsed.requests) == 1_000
    assert (parsed.requests[7].folder, parsed.requests[7].name) == ("F7", "F7 / R7")

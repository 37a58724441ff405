"""Masking a secret in every form it takes on the way out: pure functions, no services."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote, quote_plus, urlencode

import pytest
from yarl import URL

from dispatch.masking import MASK, Masker
from tests.support import finishes_within

SECRET = "p@ss wörd/+&\"<'\n☎"

FORMS = {
    "raw": SECRET,
    "percent-encoded": quote(SECRET, safe=""),
    "percent-encoded, / kept": quote(SECRET),
    "percent-encoded, lower-case hex": quote(SECRET, safe="").lower(),
    "form-encoded": quote_plus(SECRET),
    "urlencode": urlencode({"k": SECRET})[2:],
    "half decoded by yarl": URL("http://h/" + quote(SECRET, safe="")).raw_path[1:],
    "JSON, ASCII": json.dumps(SECRET)[1:-1],
    "JSON, UTF-8": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "JSON with \\/": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
    "XML": html.escape(SECRET),
    "XML, numeric": "".join(f"&#{ord(c)};" for c in SECRET),
    "a header's control characters as spaces": SECRET.replace("\n", " "),
    "upper case": SECRET.upper(),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_form_of_a_secret_is_masked_and_the_text_around_it_kept(form: str) -> None:
    assert Masker([SECRET])(f"refused: 'http://h/{form}?x=1' is not valid") == (
        f"refused: 'http://h/{MASK}?x=1' is not valid")


def test_the_basic_credentials_are_a_secret_of_their_own() -> None:
    credentials = base64.b64encode(b"crm:" + SECRET.encode()).decode()
    masked = Masker([SECRET, credentials])(f"Authorization: Basic {credentials}")
    assert masked == f"Authorization: Basic {MASK}"


def test_each_occurrence_is_masked_even_overlapping_ones() -> None:
    assert Masker(["aba"])("x ababa y aba") == f"x {MASK} y {MASK}"
    assert Masker(["tok"])("tok%74ok") == MASK  # "tok" then "%74ok" (tok, encoded)


def test_a_secret_holding_an_escape_is_found_as_written_and_as_read() -> None:
    masker = Masker(["ab%41cd"])
    assert masker("raw ab%41cd, encoded ab%2541cd, after a percent 1%ab%41cd") == (
        f"raw {MASK}, encoded {MASK}, after a percent 1%{MASK}")


def test_no_secret_masks_nothing() -> None:
    assert not Masker([None, ""])
    assert Masker([None, ""])("p%40ss") == "p%40ss"


@pytest.mark.parametrize("secret, text", [
    ("a" * 4096 + "!", "a" * 200_000),
    ("a" * 4096, "a" * 200_000),
    ("ab" * 2048, "ab" * 100_000),
    ("%25" * 1365 + "!", "%25" * 70_000),
])
def test_masking_is_linear_on_crafted_text(secret: str, text: str) -> None:
    """A pattern of per-character alternatives took 7.4 s on "a" * 4096 in "a" * 100,000
    (it tries the whole secret at every position); finding it with ``str.find`` and
    following a match by the secret's period takes milliseconds."""
    finishes_within(5, lambda: Masker([secret])(text))

"""Counts in messages (``event_manager.wording``): pure logic."""

from event_manager.wording import counted


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "attempt") == "1 attempt"
    assert counted(0, "attempt") == "0 attempts"
    assert counted(2, "row") == "2 rows"
    assert counted(12345, "row") == "12,345 rows"
    assert counted(3, "delivery", "deliveries") == "3 deliveries"


def test_a_pause_after_one_failed_attempt_says_attempt() -> None:
    from dispatch.breaker import _reason

    assert _reason(1, "connection refused").startswith("1 attempt in a row failed (last: ")
    assert _reason(20, "").startswith("20 attempts in a row failed; ")

"""Counts in messages (``event_manager.wording``): pure logic."""

from event_manager.wording import counted


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "attempt") == "1 attempt"
    assert counted(0, "attempt") == "0 attempts"
    assert counted(2, "row") == "2 rows"
    assert counted(12345, "row") == "12,345 rows"
    assert counted(3, "delivery", "deliveries") == "3 deliveries"

"""When a failed attempt is tried again (``dispatch.retry.decide``): pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch.retry import JITTER, decide
from event_manager.config import RetrySchedule

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule.parse("5,30,120")


def waits(attempt: int, retry_after: float | None = None, times: int = 40) -> list[float]:
    outcomes = [decide(what="503 Service Unavailable", retryable=True, attempt=attempt,
                       schedule=SCHEDULE, retry_after=retry_after, now=NOW)
                for _ in range(times)]
    assert all(o.status == "RETRYING" for o in outcomes)
    return [(o.next_attempt_at - NOW).total_seconds() for o in outcomes]


def test_deliveries_that_failed_together_come_due_spread_out_never_early() -> None:
    """Hundreds of attempts to a dead endpoint time out in one instant: their retries
    must not come back as one wave."""
    for attempt, delay in ((1, 5.0), (2, 30.0), (3, 120.0)):
        found = waits(attempt)
        assert all(delay <= w <= delay * (1 + JITTER) for w in found)
        assert max(found) - min(found) > delay * JITTER / 4  # spread, not one instant


def test_a_receivers_retry_after_is_kept_as_it_says() -> None:
    assert set(waits(1, retry_after=2.0)) == {2.0}


def test_the_message_says_when_the_retry_is() -> None:
    outcome = decide(what="503 Service Unavailable", retryable=True, attempt=1,
                     schedule=SCHEDULE, now=NOW)
    at = outcome.next_attempt_at
    assert at is not None and NOW + timedelta(seconds=5) <= at
    assert outcome.message == f"503 Service Unavailable, retry 1 of 3 at {at:%H:%M:%S} UTC"

"""What an attempt's result means: SUCCEEDED, RETRYING (and when), or FAILED, with the
message the Activity Monitor shows.

Retryable: timeouts, connection errors, 408, 429 and 5xx. A ``Retry-After`` header
(seconds or an HTTP date) is honoured, up to an hour. Everything else fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus

from event_manager.config import RetrySchedule
from event_manager.zones import clock

MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Outcome:
    status: str  # SUCCEEDED | RETRYING | FAILED
    message: str
    next_attempt_at: datetime | None = None


def seconds_until(moment: datetime) -> float:
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def status_text(code: int) -> str:
    """``"503 Service Unavailable"``; an unknown code is just the number."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def retryable_status(code: int) -> bool:
    return code in (408, 429) or 500 <= code <= 599


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After value: ``"120"`` or ``"Wed, 21 Oct 2026 07:28:00 GMT"``."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(0.0, (moment - now).total_seconds()), MAX_RETRY_AFTER)


def decide(
    *, what: str, retryable: bool, attempt: int, schedule: RetrySchedule,
    retry_after: float | None = None, now: datetime | None = None,
    timezone: str | None = None,
) -> Outcome:
    """The outcome of a failed attempt number ``attempt`` (1-based, within this cycle).

    ``decide(what="503 Service Unavailable", retryable=True, attempt=1,
    timezone="Asia/Tokyo", ...)`` with the default schedule gives RETRYING,
    "503 Service Unavailable, retry 1 of 5 at 15:12:03 (Asia/Tokyo)": the time in the
    tenant's zone (``event_manager.zones``).
    """
    now = now or datetime.now(UTC)
    if not retryable:
        return Outcome("FAILED", f"{what}; not retried")
    delay = schedule.delay_after(attempt)
    if delay is None:
        tries = "attempt" if attempt == 1 else "attempts"
        return Outcome("FAILED", f"{what}; gave up after {attempt} {tries}")
    if retry_after is not None:
        delay = retry_after
    at = now + timedelta(seconds=delay)
    retries = len(schedule.delays)
    return Outcome("RETRYING", f"{what}, retry {attempt} of {retries} at "
                               f"{clock(at, timezone, now)}", at)


def succeeded(code: int, elapsed_ms: float) -> Outcome:
    return Outcome("SUCCEEDED", f"{status_text(code)} in {elapsed_ms:.0f} ms")

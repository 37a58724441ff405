"""What an attempt's row says: its outcome (SUCCEEDED, RETRYING and when, or FAILED, with
the message the Activity Monitor shows: ``dispatch.retry``), the request as it was sent
and the start of the answer, secrets masked; and how an outcome is logged and counted.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import traceback
from collections.abc import Mapping
from typing import Any

import aiohttp

from dispatch import retry
from dispatch.client import SNIPPET_CHARS, Response
from dispatch.guard import DestinationRefused, refusal
from dispatch.masking import Masker
from dispatch.render import RenderedRequest
from dispatch.summary import request_summary
from event_manager import metrics
from event_manager.config import RetrySchedule
from event_manager.sizes import cut

log = logging.getLogger("event_manager.delivery")
WHAT_CHARS = 2000
"""What went wrong, as a row's message and log lines tell it, is cut at this length (an
error may quote a whole URL)."""


def failed(what: str) -> dict[str, Any]:
    """The changes of an attempt that ends before anything is sent."""
    return {"status": "FAILED", "message": cut(what, WHAT_CHARS), "next_attempt_at": None}


class Report:
    """The changes of an attempt whose request was built: the request as shown, and what
    sending it came to."""

    def __init__(self, request: RenderedRequest, action: Mapping[str, Any],
                 row: Mapping[str, Any], schedule: RetrySchedule,
                 timezone: str | None = None) -> None:
        self.mask = Masker([*request.secrets, action.get("signing_secret")])
        self.shown = {"request": request_summary(request, action, self.mask),
                      "unresolved_parameters": request.unresolved,
                      "empty_parameters": request.empty}
        self.row_id = row["_id"]
        self.attempt = row["attempts"] - row.get("cycle_start", 0)
        """Within this cycle (a retry by hand starts a new one)."""
        self.schedule = schedule
        self.timeout = action["timeout_seconds"]
        self.timezone = timezone
        """The tenant's, for the time of a retry."""

    def answered(self, response: Response) -> dict[str, Any]:
        if 200 <= response.status <= 299:
            outcome = retry.succeeded(response.status, response.elapsed_ms)
        else:
            outcome = retry.decide(
                what=retry.status_text(response.status),
                retryable=retry.retryable_status(response.status),
                attempt=self.attempt, schedule=self.schedule,
                retry_after=retry.retry_after_seconds(response.retry_after),
                timezone=self.timezone,
            )
        return {**self.shown, "http_status": response.status,
                "response_snippet": cut(self.mask(response.text), SNIPPET_CHARS,
                                        response.size, response.more),
                **_fields(outcome)}

    def unanswered(self, error: Exception) -> dict[str, Any]:
        what, retryable = describe(error, self.timeout)
        if what is None:
            # The error's text may quote the request: masked, like everything shown
            # (and cut, like every log line, by event_manager.logs).
            log.error("delivery %s failed unexpectedly: %s", self.row_id,
                      self.mask("".join(traceback.format_exception(error))))
            what, retryable = f"unexpected error: {type(error).__name__}", False
        outcome = retry.decide(what=cut(self.mask(what), WHAT_CHARS), retryable=retryable,
                               attempt=self.attempt, schedule=self.schedule,
                               timezone=self.timezone)
        return {**self.shown, **_fields(outcome)}


def _fields(outcome: retry.Outcome) -> dict[str, Any]:
    return {"status": outcome.status, "message": outcome.message,
            "next_attempt_at": outcome.next_attempt_at}


def describe(error: BaseException, timeout: float) -> tuple[str | None, bool]:
    """What went wrong, in a few words, and whether another attempt may help."""
    refused = error if isinstance(error, DestinationRefused) else refusal(error)
    if refused is not None:
        return f"destination refused: {refused}", False
    if isinstance(error, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"timed out after {timeout:g} s", True
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {error.host}", True
    if isinstance(error, aiohttp.ClientConnectorError):
        if error.os_error.errno == errno.ECONNREFUSED:
            return "connection refused", True
        return f"cannot connect: {error.os_error.strerror or error.os_error}", True
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering", True
    if isinstance(error, aiohttp.ClientOSError):
        return f"connection error: {error.strerror or error}", True
    if isinstance(error, aiohttp.InvalidURL):
        return f"invalid URL: {error}", False
    if isinstance(error, aiohttp.ClientError):
        return f"HTTP error: {error}", True
    return None, False


def observe(row: Mapping[str, Any], updated: Mapping[str, Any]) -> None:
    """Log and count an outcome once it is written."""
    status = updated["status"]
    metrics.DELIVERIES.labels(status).inc()
    if status == "SUCCEEDED":
        log.debug("%s", updated["message"])
    else:
        log.log(logging.INFO if status == "RETRYING" else logging.WARNING, "%s: %s",
                updated["action_name"], updated["message"])
    if status != "RETRYING":
        metrics.LAG_SECONDS.observe((updated["updated_at"] - row["created_at"])
                                    .total_seconds())

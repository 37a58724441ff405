"""Logging for every process: readable lines by default, one JSON object per line with
``EVENT_MANAGER_LOG_FORMAT=json``.

Records carry the tenant, trigger id and activity id of the work in hand, bound with
``context(...)`` around it (context variables, so concurrent deliveries on one event
loop each keep their own)::

    2026-11-29 07:09:48 INFO event_manager.delivery: CRM: HTTP 503, retry 1 of 5 at
        07:09:53 UTC [tenant=acme trigger=6b0b… activity=6b0b…]      (one line)
    {"time": "2026-11-29T07:09:48", "level": "INFO", "logger": "event_manager.delivery",
     "message": "CRM: HTTP 503, …", "tenant": "acme", "trigger_id": "6b0b…",
     "activity_id": "6b0b…"}                                           (one line)

Nothing here knows secrets: the code never passes a secret to a log call, and the
tests read the logs of a whole run to prove it.

Every record has a fixed bound, whoever logs it: a message over 8,192 characters and a
traceback over 16,384 are cut and say so ("… [cut, 19.2 MiB in all]").
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from event_manager.sizes import cut

FIELDS = ("tenant", "trigger_id", "activity_id")
_current: dict[str, ContextVar[str | None]] = {f: ContextVar(f, default=None) for f in FIELDS}
MESSAGE_CHARS = 8192
TRACEBACK_CHARS = 16384


@contextmanager
def context(**values: str | None) -> Iterator[None]:
    """Bind ``tenant``, ``trigger_id`` and/or ``activity_id`` for the records inside."""
    tokens = [(_current[k], _current[k].set(v)) for k, v in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, _current[name].get())
        _bound(record)
        return True


def _bound(record: logging.LogRecord) -> None:
    """Cut the record's message and traceback to their bounds, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format: the formatter reports it as logging does
        return
    if len(message) > MESSAGE_CHARS:
        record.msg, record.args = cut(message, MESSAGE_CHARS), None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        # Both formatters print exc_text when there is no exc_info to format.
        record.exc_info, record.exc_text = None, cut(text, TRACEBACK_CHARS)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s",
                         datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        bound = [f"{short}={value}" for short, name in
                 (("tenant", "tenant"), ("trigger", "trigger_id"), ("activity", "activity_id"))
                 if (value := getattr(record, name, None))]
        return f"{line} [{' '.join(bound)}]" if bound else line


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    return ConsoleFormatter()


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """One handler on the root logger, to standard error; every library's records
    (uvicorn, Dramatiq, PyMongo) go through it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    logging.getLogger("pymongo").setLevel(max(logging.INFO, root.level))

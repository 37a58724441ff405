"""Clock times in messages, in the tenant's time zone (``Settings.timezone``) and naming it.

One form everywhere: ``"08:38:28 (Europe/Sarajevo)"``, with the date before it when the
moment is not today in that zone: ``"2026-12-03 04:40:00 (Europe/Sarajevo)"``. A row's
"retry 2 of 5 at 08:38:28 (Europe/Sarajevo)" then reads like its time column in the console.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    """The zone named ``name``, made once (messages are written on the worker's hot path);
    UTC for a name this machine does not know (settings check names when they are set)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def clock(moment: datetime, timezone: str | None, now: datetime | None = None, *,
          date: bool = False) -> str:
    """``moment`` as a message says it: ``clock(07:38:28 UTC today, "Europe/Sarajevo")`` is
    ``"08:38:28 (Europe/Sarajevo)"``; the date comes first when it is not today there (as
    of ``now``), or always with ``date``."""
    here = zone(timezone)
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(here)
    today = (now or datetime.now(UTC)).astimezone(here).date()
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if date or local.date() != today else "%H:%M:%S")
    return f"{shown} ({here.key})"

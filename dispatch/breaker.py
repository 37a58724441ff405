"""An action whose endpoint keeps failing is paused: its deliveries wait for one probe
instead of each being tried on its schedule.

A dead endpoint with 2,000 deliveries due would otherwise be tried 2,000 times, each
attempt hanging until its timeout and costing a claim, an outcome and a retry message:
database writes and CPU that the healthy actions' first attempts need. So each worker
process counts the attempts of each action that failed in a row (no answer: a timeout,
a refused connection, a DNS failure; or a 5xx). After ``after`` of them (the setting
``pause_after_failures``, 20; 0 never pauses) the action is paused for
``FIRST_PAUSE_SECONDS``:

- its deliveries (first attempts and retries alike) are not claimed or attempted: each
  goes back to the broker until the pause ends (``dispatch.retry_batches``: a few
  messages for many deliveries; no database call, and the attempt is not counted). One
  that would expire first comes back at its deadline, and ends EXPIRED as usual;
- the first delivery after the pause is the *probe*, attempted alone: an answer under
  500 ends the pause (the others come back over half a pause after it, not in one
  burst, or within a pause when they came during the probe); a failure
  pauses the action again for twice as long, up to ``LONGEST_PAUSE_SECONDS``. A probe
  that says nothing (it expired, its request could not be built) lets another go after
  ``PROBE_SECONDS``.

A success resets the count. Pausing and resuming are written to the action's health
(``pausedUntil``, ``pausedReason``), as the last worker process to change them saw it.
Deliveries handed back are announced as held by this process (``dispatch.recovery``)
until a little after their return, so that recovery does not queue them again while
their message waits at the broker.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from event_manager.wording import counted
from tenants.catalog import MAX_TIMEOUT_SECONDS

FIRST_PAUSE_SECONDS = 5.0
LONGEST_PAUSE_SECONDS = 60.0
"""A probe at least this often: an endpoint back up gets its deliveries within a minute."""
PROBE_SECONDS = MAX_TIMEOUT_SECONDS + 5.0
"""A probe without an outcome this long (it expired, or its request could not be built)
lets the next delivery probe instead."""
SPREAD = 0.5
SLOTS = 8
"""Deliveries held until a pause ends come back spread over this part of the pause after
it, not at once: a process does not take 2,000 of them in one second, and an endpoint
that is back does not get them in one burst."""
MAX_TRACKED = 10_000
"""Actions a process counts failures of; beyond, those not paused are forgotten."""

Key = tuple[str, str]
"""(tenant, action id)."""


@dataclass
class _Count:
    failures: int = 0
    until: float | None = None
    """Paused until (``clock``); None while not paused."""
    pause: float = 0.0
    probe: float | None = None
    """When the probe of this pause started."""
    version: object = None
    """The action as its attempts were counted (its ``updated_at``): an action edited
    since, its URL mended perhaps, starts a new count, unpaused."""


@dataclass(frozen=True)
class Change:
    """A pause begun (``until`` a time, with its reason) or ended (``until`` None)."""

    seconds: float | None
    reason: str = ""


class Breakers:
    """One worker process's failure counts and pauses, by tenant and action."""

    def __init__(self, after: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self.clock = clock
        self.counts: dict[Key, _Count] = {}
        self.handed_back: dict[str, float] = {}
        """Activity ids this process handed back, and when (``clock``) they are due back."""

    def paused(self, key: Key) -> bool:
        count = self.counts.get(key)
        return count is not None and count.until is not None

    def wait(self, key: Key, version: object, activity_id: str) -> float | None:
        """Seconds the delivery ``activity_id`` of ``key``'s action (as of ``version``)
        must wait at the broker, or None: it goes now (the action is not paused, or this
        delivery is its probe).

        Deliveries come back at one of ``SLOTS`` moments spread over half a pause after
        it ends (the delivery's slot is its id's hash): those held together go back
        together, as one message per slot (``dispatch.retry_batches``), pause after pause,
        instead of splitting into a message each."""
        count = self.counts.get(key)
        if count is not None and count.version != version:
            del self.counts[key]
            return None
        if count is None or count.until is None:
            return None
        clock = self.clock()
        if clock >= count.until and (count.probe is None
                                     or clock - count.probe >= PROBE_SECONDS):
            count.probe = clock
            return None
        if clock < count.until:
            ends = count.until
        else:  # the probe is out: as if the next pause had begun with it
            assert count.probe is not None
            ends = count.probe + count.pause
        back = ends + count.pause * SPREAD * (zlib.crc32(activity_id.encode()) % SLOTS) / SLOTS
        return max(back - clock, 0.0) or count.pause * SPREAD

    def attempted(self, key: Key, version: object, ok: bool, started: float,
                  what: str = "") -> Change | None:
        """Count an attempt of ``key``'s action (as of ``version``) that began at
        ``started`` (``clock``): ``ok`` when the endpoint answered under 500. A pause
        begun or ended by it, if any; ``what`` went wrong, for a pause's reason."""
        count = self.counts.get(key)
        if count is not None and count.version != version:
            del self.counts[key]
            count = None
        if ok:
            if count is None:
                return None
            del self.counts[key]
            return Change(None) if count.until is not None else None
        if count is None:
            self._bound()
            count = self.counts[key] = _Count(version=version)
        count.failures += 1
        if count.until is None:
            if not self.after or count.failures < self.after:
                return None
            count.pause = FIRST_PAUSE_SECONDS
        elif count.probe is not None and started >= count.probe:
            count.pause = min(count.pause * 2, LONGEST_PAUSE_SECONDS)
        else:
            return None  # begun before the pause: it tells nothing new
        count.until, count.probe = self.clock() + count.pause, None
        return Change(count.pause, _reason(count.failures, what))

    def held(self, ids: Iterable[str], seconds: float) -> None:
        """Note deliveries handed back to the broker for ``seconds``."""
        due = self.clock() + seconds
        for activity_id in ids:
            self.handed_back[activity_id] = due

    def holding(self, grace: float) -> list[str]:
        """The deliveries handed back that are not due back more than ``grace`` seconds
        ago (the others are forgotten: recovery queues them again if their message was
        lost)."""
        horizon = self.clock() - grace
        for activity_id in [i for i, due in self.handed_back.items() if due < horizon]:
            del self.handed_back[activity_id]
        return list(self.handed_back)

    def _bound(self) -> None:
        if len(self.counts) >= MAX_TRACKED:
            for key in [k for k, c in self.counts.items() if c.until is None]:
                del self.counts[key]
                if len(self.counts) <= MAX_TRACKED // 2:
                    break


def _reason(failures: int, what: str) -> str:
    """``20 attempts in a row failed (last: timed out after 5 s); one delivery at a time
    tries the endpoint until it answers``."""
    last = f" (last: {what})" if what else ""
    return (f"{counted(failures, 'attempt')} in a row failed{last}; its deliveries wait while one "
            "of them tries the endpoint")

"""Reconciliation after faults: was every accepted trigger delivered or failed with a
reason, was anything lost, and did a receiver get a delivery twice?

The bookkeeping is the client's: what the API answered for each trigger (``Sent``), what
the receiver took in (``Receipt``, keyed by action path and call id), and when faults were
injected (``Fault``). The activity rows are read straight from the database. Used by
``tests/test_faults.py`` and ``bench/soak.py``.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tests.fault_receiver import Receipt

FINAL = ("SUCCEEDED", "FAILED")
WORKER_KILLED = "worker killed"


@dataclass
class Sent:
    """One trigger as the API answered it."""

    tenant: str
    call_id: str
    accepted: bool
    trigger_id: str | None = None
    activity_ids: list[str] = field(default_factory=list)
    refusal: str | None = None
    """The error's code and message when the API refused the trigger."""


@dataclass
class Fault:
    kind: str  # WORKER_KILLED, "redis restarted", "mongodb restarted", ...
    at: float
    """time.monotonic() when it began."""
    until: float = 0.0
    """When it was over, plus the moment a request already on its way needs to reach
    the receiver; ``at`` if not set."""

    def end(self, slack: float = 1.0) -> None:
        self.until = time.monotonic() + slack


@dataclass
class Duplicate:
    key: tuple[str, str]
    extra: int
    cause: str
    """The faults between the first and the second delivered request, or "no fault"."""

    @property
    def explained(self) -> bool:
        return WORKER_KILLED in self.cause


@dataclass
class Report:
    triggers: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    """FAILED rows by kind of reason ("503 Service Unavailable", "timed out after 1 s")."""
    lost: list[str] = field(default_factory=list)
    """Accepted delivery ids with no row at all."""
    unfinished: list[tuple[str, str]] = field(default_factory=list)
    """(id, status) of accepted deliveries not SUCCEEDED or FAILED (yet)."""
    no_message: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    succeeded_unseen: list[str] = field(default_factory=list)
    """SUCCEEDED rows whose receiver never took the request in: a bug."""
    over_sent: list[str] = field(default_factory=list)
    """Deliveries whose receiver got more requests than the row counts attempts: two
    workers sent the same attempt, a bug even when a worker was killed."""
    outcomes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(path, call id) → the final row."""
    refused_but_recorded: int = 0
    """Rows of refused triggers left in the database (they are delivered anyway)."""
    refused_but_delivered: int = 0
    requests: int = 0
    attempts: int = 0

    @property
    def extra_deliveries(self) -> int:
        return sum(d.extra for d in self.duplicates)

    @property
    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicates if not d.explained]

    @property
    def settled(self) -> bool:
        return not self.unfinished

    def problems(self, duplicates_allowed: bool = False) -> list[str]:
        """What breaks "nothing accepted is ever lost"; empty when all is well.
        Duplicates count only when ``duplicates_allowed`` is False or they have no
        worker kill to explain them."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} accepted deliveries have no row: {self.lost[:5]}")
        if self.unfinished:
            found.append(f"{len(self.unfinished)} deliveries did not finish: "
                         f"{self.unfinished[:5]}")
        if self.no_message:
            found.append(f"{len(self.no_message)} final rows without a message")
        if self.succeeded_unseen:
            found.append(f"{len(self.succeeded_unseen)} SUCCEEDED rows never reached the "
                         f"receiver: {self.succeeded_unseen[:5]}")
        if self.over_sent:
            found.append(f"{len(self.over_sent)} deliveries sent more often than attempted: "
                         f"{self.over_sent[:5]}")
        bad = self.unexplained if duplicates_allowed else self.duplicates
        if bad:
            found.append(f"{sum(d.extra for d in bad)} duplicate deliveries: "
                         + "; ".join(f"{d.key} x{d.extra + 1} ({d.cause})" for d in bad[:5]))
        return found

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.failed.most_common()) or "none"
        refused = ", ".join(f"{n} {k}" for k, n in self.refused.most_common()) or "none"
        causes = Counter(d.cause for d in self.duplicates for _ in range(d.extra))
        dupes = ", ".join(f"{n} after {k}" for k, n in causes.items())
        return "\n".join([
            f"triggers sent:     {self.triggers}",
            f"  accepted:        {self.accepted}",
            f"  refused:         {sum(self.refused.values())} ({refused})",
            f"deliveries:        {self.deliveries} accepted, {self.attempts} attempts, "
            f"{self.requests} requests received",
            f"  succeeded:       {self.succeeded}",
            f"  failed:          {sum(self.failed.values())} ({kinds})",
            f"  unfinished:      {len(self.unfinished)}",
            f"  lost:            {len(self.lost)}",
            f"duplicates:        {self.extra_deliveries}" + (f" ({dupes})" if dupes else ""),
            f"refused triggers:  {self.refused_but_recorded} rows left behind, "
            f"{self.refused_but_delivered} requests delivered anyway",
        ])


def reason_kind(message: str) -> str:
    """``"503 Service Unavailable"`` from "503 Service Unavailable; gave up after 4 attempts"."""
    return re.sub(r", retry \d+ of \d+ at .*", "", message.split(";")[0]).strip()


def explain(first: Receipt, second: Receipt, faults: Iterable[Fault]) -> str:
    """The faults that overlap the time between the first and the second request."""
    between = sorted({f.kind for f in faults
                      if f.at <= second.started and max(f.at, f.until) >= first.started})
    return " + ".join(between) or "no fault"


def reconcile(db: Any, sent: list[Sent], paths: dict[str, dict[str, str]],
              receipts: list[Receipt], faults: list[Fault]) -> Report:
    """Check every accepted trigger against its rows and the receiver.

    ``db`` is the tenants' database (pymongo); ``paths`` maps tenant → action id → the
    receiver path of that action."""
    report = Report(triggers=len(sent))
    delivered: dict[tuple[str, str], list[Receipt]] = defaultdict(list)
    received: Counter[tuple[str, str]] = Counter()
    for receipt in receipts:
        received[receipt.key] += 1
        if receipt.delivered:
            delivered[receipt.key].append(receipt)
    fields = {"status": 1, "message": 1, "action_id": 1, "params": 1, "attempts": 1}
    rows = {tenant: {str(r["_id"]): r for r in db[f"t_{tenant}_activity"].find({}, fields)}
            for tenant in {s.tenant for s in sent}}
    accepted_keys: set[tuple[str, str]] = set()
    refused_calls = {(s.tenant, s.call_id) for s in sent if not s.accepted}
    for trigger in sent:
        if not trigger.accepted:
            report.refused[trigger.refusal or "not accepted"] += 1
            continue
        report.accepted += 1
        for activity_id in trigger.activity_ids:
            report.deliveries += 1
            row = rows[trigger.tenant].get(activity_id)
            if row is None:
                report.lost.append(activity_id)
                continue
            report.attempts += row["attempts"]
            key = (paths[trigger.tenant][row["action_id"]], trigger.call_id)
            accepted_keys.add(key)
            if received[key] > row["attempts"]:
                report.over_sent.append(activity_id)
            if row["status"] not in FINAL:
                report.unfinished.append((activity_id, row["status"]))
                continue
            report.outcomes[key] = row
            if not row.get("message"):
                report.no_message.append(activity_id)
            if row["status"] == "SUCCEEDED":
                report.succeeded += 1
                if not delivered.get(key):
                    report.succeeded_unseen.append(activity_id)
            else:
                report.failed[reason_kind(row.get("message") or "")] += 1
            got = delivered.get(key, [])
            if len(got) > 1:
                report.duplicates.append(
                    Duplicate(key, len(got) - 1, explain(got[0], got[1], faults)))
    report.requests = sum(received[key] for key in accepted_keys)
    for tenant, found in rows.items():
        report.refused_but_recorded += sum(
            1 for r in found.values()
            if (tenant, str((r.get("params") or {}).get("call_id"))) in refused_calls)
    refused_by_call = {call for _, call in refused_calls}
    report.refused_but_delivered = sum(
        len(got) for key, got in delivered.items()
        if key not in accepted_keys and key[1] in refused_by_call)
    return report


class Settles(Protocol):
    @property
    def settled(self) -> bool: ...


R = TypeVar("R", bound=Settles)


def settle(check: Callable[[], R], timeout: float, interval: float = 1.0) -> R:
    """Reconcile until every accepted delivery is final (or ``timeout`` runs out); the
    last report either way, for the caller to judge (``Report`` here, or
    ``tests.call_order.OrderReport``)."""
    deadline = time.monotonic() + timeout
    while True:
        report = check()
        if report.settled or time.monotonic() > deadline:
            return report
        time.sleep(interval)

"""What the bench reads from ``/proc`` (Linux only): CPU time and memory of a process,
who listens on a port, and how busy the whole machine is.

A ``CpuMeter`` turns two readings into *cores used* per process over a window, so a
result can say "the worker used 0.95 of a core, FerretDB 0.60, other programs 0.40":
this machine is shared, and the share taken by others is part of the evidence. Each
process is read with all its descendants (``tree_cpu_seconds``): a worker of
``--processes 2`` is Dramatiq's main process and its two forked children, the API is
uvicorn and the fork server of its Postman parsers.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the name (state first), None once ``pid``
    is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # the name may hold spaces


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads), None once it is gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and every descendant, the ended ones included; None once
    ``pid`` is gone.

    Each live process of the tree counts its own time and that of its children that
    ended and were waited for (``cutime``, ``cstime``: a live process is never in its
    parent's), so a Postman parser that ran and exited within a window counts in it.
    """
    total = 0.0
    for member in tree(pid):
        fields = _stat(member)
        if fields is None:
            if member == pid:
                return None
            continue  # ended between the walk and the read: its parent's cutime has it
        total += sum(int(f) for f in fields[11:15]) / TICKS
    return total


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first."""
    found, index = [pid], 0
    while index < len(found):
        found += children(found[index])
        index += 1
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """``{"VmRSS": ..., "VmHWM": ...}`` in kB: resident now, and the peak so far."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Dramatiq's worker processes are forked children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def nice(pid: int) -> int | None:
    """The nice value of ``pid`` (None once it has gone)."""
    fields = _stat(pid)
    return None if fields is None else int(fields[16])


def parent(pid: int) -> int | None:
    """The parent of ``pid`` (None once it has gone)."""
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (IPv4 or IPv6), None if none or not visible."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


WAKE_GAP = 0.02
"""Seconds asleep before each timed run of ``wake_penalty``: a steady 50 events/s."""


def _python_work() -> None:
    """A fixed piece of ordinary Python (object building, dict lookups, JSON), about
    0.1 ms on a warm core: the kind of work a request or a delivery does between waits."""
    doc = {"event": "HANGUP", "params": {"seq": 1, "caller_id": "+38761111222"},
           "rows": [{"_id": i, "status": "QUEUED", "attempts": 0} for i in range(8)]}
    for _ in range(5):
        json.loads(json.dumps(doc))


def wake_penalty(runs: int = 200) -> dict[str, float]:
    """What waking up costs on this machine: the CPU time of the same Python work run
    back to back (``warm_us``) and right after a ``WAKE_GAP`` sleep (``after_sleep_us``),
    medians of ``runs`` each, and their ratio (``factor``).

    A process that serves one event at a time pays ``after_sleep_us``: caches and branch
    predictors have gone cold while it slept (on a virtual machine, the idle core was
    given back to the host). Bursts pay ``warm_us``. So the CPU per delivery of a steady
    low rate is higher than a burst's by about this factor, and figures taken on two
    machines (or on two days of one VM) compare only together with it."""
    def timed() -> float:
        began = time.thread_time_ns()
        _python_work()
        return (time.thread_time_ns() - began) / 1000

    for _ in range(20):
        _python_work()
    warm = sorted(timed() for _ in range(runs))
    cold = []
    for _ in range(runs):
        time.sleep(WAKE_GAP)
        cold.append(timed())
    cold.sort()
    warm_us, cold_us = warm[runs // 2], cold[runs // 2]
    return {"warm_us": round(warm_us, 1), "after_sleep_us": round(cold_us, 1),
            "factor": round(cold_us / max(warm_us, 0.001), 2), "gap_ms": WAKE_GAP * 1000}


INSTALLATION = ("api", "worker", "ferretdb", "redis")
"""The processes of an installation as ``event-manager up`` runs it: what a result's
``installation`` sums."""
SCALED_OUT = ("api_2",)
"""Processes a scenario adds to the installation for a while (a second API process in
scenario 4): counted in ``installation`` when measured."""
ALONE = frozenset({"bench"})
"""Names read as one process, not a tree: the bench's children are the API, the worker
and the receiver, each counted on its own (the receiver among *others*)."""


@dataclass
class CpuMeter:
    """CPU used by each named process (with its descendants, see ``ALONE``) between
    ``start()`` and ``stop()``."""

    pids: dict[str, int]
    started: float = 0.0
    wall: float = 0.0
    before: dict[str, float | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """CPU seconds per name over the window, once stopped (``installation`` included)."""
    machine_before: tuple[float, float] = (0.0, 0.0)

    def read(self, name: str, pid: int) -> float | None:
        return cpu_seconds(pid) if name in ALONE else tree_cpu_seconds(pid)

    def start(self) -> CpuMeter:
        self.started = time.monotonic()
        self.before = {name: self.read(name, pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_seconds()
        return self

    def stop(self) -> dict[str, float]:
        """``{name: cores}``, plus ``installation`` (``INSTALLATION`` together),
        ``machine`` (all programs) and ``others`` (programs not named, such as other
        people's tests), each in cores (1.0 = one full core)."""
        self.wall = wall = max(time.monotonic() - self.started, 1e-6)
        for name, pid in self.pids.items():
            before, after = self.before.get(name), self.read(name, pid)
            if before is not None and after is not None:
                self.seconds[name] = after - before
        busy, _ = machine_busy_seconds()
        machine = (busy - self.machine_before[0]) / wall
        used = {name: round(spent / wall, 3) for name, spent in self.seconds.items()}
        used["machine"] = round(machine, 3)
        used["others"] = round(max(machine - sum(self.seconds.values()) / wall, 0.0), 3)
        self.seconds["installation"] = sum(self.seconds.get(n, 0.0)
                                           for n in (*INSTALLATION, *SCALED_OUT))
        used["installation"] = round(self.seconds["installation"] / wall, 3)
        return used

    def per_thousand(self, deliveries: int) -> dict[str, float | None]:
        """CPU seconds per 1,000 deliveries of each process of the installation and of
        all together (``installation``), once stopped: ``{"installation": 1.84, "api":
        0.52, …}``; None for each when nothing was delivered."""
        return {name: round(self.seconds.get(name, 0.0) * 1000 / deliveries, 3)
                if deliveries else None for name in ("installation", *INSTALLATION)}

"""What the bench reads from ``/proc`` (Linux only): CPU time and memory of a process,
who listens on a port, and how busy the whole machine is.

A ``CpuMeter`` turns two readings into *cores used* per process over a window, so a
result can say "the worker used 0.95 of a core, FerretDB 0.60, other programs 0.40":
this machine is shared, and the share taken by others is part of the evidence.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


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


@dataclass
class CpuMeter:
    """Cores used by each named process between ``start()`` and ``stop()``."""

    pids: dict[str, int]
    started: float = 0.0
    before: dict[str, float | None] = field(default_factory=dict)
    machine_before: tuple[float, float] = (0.0, 0.0)

    def start(self) -> CpuMeter:
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_seconds()
        return self

    def stop(self) -> dict[str, float]:
        """``{name: cores}``, plus ``machine`` (all programs) and ``others`` (programs
        not named, such as other people's tests), each in cores (1.0 = one full core)."""
        wall = max(time.monotonic() - self.started, 1e-6)
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self.before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                used[name] = round((after - before) / wall, 3)
        busy, _ = machine_busy_seconds()
        machine = (busy - self.machine_before[0]) / wall
        used["machine"] = round(machine, 3)
        used["others"] = round(max(machine - sum(v for k, v in used.items()
                                                 if k != "machine"), 0.0), 3)
        return used

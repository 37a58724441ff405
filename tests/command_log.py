"""The database commands a process sends, seen by PyMongo's command monitoring
(``pymongo.monitoring.CommandListener``), to count round trips without timing anything.

In this process, pass a ``Commands`` to a client (``event_listeners=[commands]``). In the
service's own processes (an API, a worker and the Dramatiq processes it starts), which
this process cannot reach into: ``hooked`` gives them an environment whose
``sitecustomize`` registers a listener for every client they make, appending each
command to a file as a line of JSON (``read``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import monitoring

LOG_VARIABLE = "TESTS_COMMAND_LOG"
WRITES = ("insert", "update", "delete", "findAndModify")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Command:
    """One command: its name, the collection it names (or ""), how many documents or
    statements it carries, the statuses it sets (``$set.status``), and the document."""

    name: str
    collection: str
    count: int
    statuses: tuple[str, ...]
    document: dict[str, Any]

    @property
    def write(self) -> bool:
        return self.name in WRITES

    def __str__(self) -> str:
        sets = f" -> {'/'.join(self.statuses)}" if self.statuses else ""
        return f"{self.name} {self.collection} x{self.count}{sets}"


def command_of(event: monitoring.CommandStartedEvent) -> Command:
    document = dict(event.command)
    target = document.get(event.command_name)
    statements = [*document.get("documents", []), *document.get("updates", []),
                  *document.get("deletes", [])]
    changes = [s.get("u", {}) for s in document.get("updates", [])]
    if event.command_name == "findAndModify":
        statements, changes = [document], [document.get("update") or {}]
    statuses = tuple(str(c["$set"]["status"]) for c in changes
                     if isinstance(c, dict) and "status" in c.get("$set", {}))
    return Command(event.command_name, target if isinstance(target, str) else "",
                   len(statements) or 1, statuses, document)


class Commands(monitoring.CommandListener):
    """The commands a client started, in order."""

    def __init__(self) -> None:
        self.seen: list[Command] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append(command_of(event))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class _FileLog(monitoring.CommandListener):
    """Appends each command started to ``path``, one line of JSON (every process of a
    test appends to the same file: one ``write`` per line, in append mode)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = command_of(event)
        line = json.dumps({"name": command.name, "collection": command.collection,
                           "count": command.count, "statuses": command.statuses,
                           "pid": os.getpid()})
        with open(self.path, "a") as out:
            out.write(line + "\n")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def install() -> None:
    """Called by the ``sitecustomize`` of ``hooked``: every client made afterwards in
    this process (and in processes it forks) logs its commands."""
    path = os.environ.get(LOG_VARIABLE)
    if path:
        monitoring.register(_FileLog(path))


def hooked(env: dict[str, str], folder: Path) -> tuple[dict[str, str], Path]:
    """``env`` for processes whose commands are logged, and the log file (in ``folder``)."""
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text("from tests.command_log import install\n\n"
                                           "install()\n")
    log = folder / "commands.jsonl"
    log.touch()
    path = os.pathsep.join(p for p in (str(site), str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, LOG_VARIABLE: str(log)}, log


def read(log: Path, start: int = 0) -> list[Command]:
    """The commands logged in ``log`` from byte ``start`` on."""
    with log.open() as lines:
        lines.seek(start)
        return [Command(d["name"], d["collection"], d["count"], tuple(d["statuses"]), d)
                for d in map(json.loads, lines)]

"""Which queues a worker process takes: first attempts, or retries at a lower CPU priority.

A dead endpoint's retries come in waves: the attempts that started together time out
together, and each wave's outcomes, retry messages and next claims are CPU work in the
worker. In the process that also sends first attempts, that work stands in the same
event loop as a healthy action's delivery, and no ordering inside one loop can put the
delivery first. So ``event-manager worker --processes N`` starts N processes for first
attempts and ``retry_processes`` more (default 1) that take only the later queue
(retries, and deliveries handed back for want of room), each lowered by ``retry_nice``:
when both want the CPU, the kernel gives it to the first attempts.

Dramatiq starts every process of one command alike, so the command passes the layout in
``EVENT_MANAGER_WORKER_LAYOUT`` ("<first>,<retry>") and each process finds its own place
from its index among its siblings (multiprocessing numbers the processes a parent starts
1, 2, …; Dramatiq starts its workers first and in order). A process that cannot tell, or
a worker started without the layout (``python -m dramatiq`` by hand), takes both queues.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from enum import Enum

import dramatiq

from event_manager.config import Settings

LAYOUT = "EVENT_MANAGER_WORKER_LAYOUT"

log = logging.getLogger("event_manager.worker")


class Role(Enum):
    FIRST = "first attempts"
    RETRIES = "retries"
    BOTH = "first attempts and retries"


@dataclass(frozen=True)
class Layout:
    first: int
    """Processes for first attempts (``--processes``)."""
    retries: int
    """Processes for retries only (``--retry-processes``); 0: all take both queues."""

    def encode(self) -> str:
        return f"{self.first},{self.retries}"

    @classmethod
    def decode(cls, text: str | None) -> Layout | None:
        try:
            first, retries = (int(part) for part in (text or "").split(","))
        except ValueError:
            return None
        return cls(first, retries) if first >= 1 and retries >= 0 else None

    def place(self, index: int) -> int:
        """A process's place among the command's from its 0-based index among the
        processes Dramatiq started (restarted ones, after SIGHUP, are numbered on)."""
        return index % (self.first + self.retries)

    def role(self, index: int | None) -> Role:
        """The role of the process with this 0-based index among the command's."""
        if index is None or self.retries == 0:
            return Role.BOTH
        return Role.RETRIES if self.place(index) >= self.first else Role.FIRST


def process_index() -> int | None:
    """This process's 0-based place among the processes its parent started (None in a
    process that was not started by multiprocessing)."""
    identity = getattr(multiprocessing.current_process(), "_identity", ())
    return identity[-1] - 1 if identity else None


def take_role(worker: dramatiq.Worker, settings: Settings) -> tuple[Role, int | None]:
    """Narrow this process's consumers to its role's queue, and lower a retry process's
    priority. Called before the worker adds its consumers (``before_worker_boot``).
    Returns the role and the process's place among the command's (0 for the first
    first-attempts process; None when not known), which numbers its metrics port."""
    layout = Layout.decode(os.environ.get(LAYOUT))
    index = process_index()
    place = None if layout is None or index is None else layout.place(index)
    role = Role.BOTH if layout is None else layout.role(index)
    if role is Role.FIRST:
        worker.consumer_whitelist = {settings.queue_name}
    elif role is Role.RETRIES:
        worker.consumer_whitelist = {settings.later_queue_name}
        os.nice(settings.retry_nice)
    log.info("this process takes %s%s", role.value,
             f" at nice +{settings.retry_nice}" if role is Role.RETRIES else "")
    return role, place

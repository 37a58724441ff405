"""``event-manager worker`` runs first attempts and retries in processes of their own
(``dispatch.roles``): the retry processes take only the later queue, at a lower CPU
priority, so that a dead endpoint's retries never take the CPU a first attempt needs.

The session's worker (``worker --threads 2``, the default layout: one process of each)
is looked at from outside: its processes in ``/proc`` (found by their database prefix),
their nice values, and what each takes, shown by stopping one (SIGSTOP) and seeing
what still arrives at the receiver.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench import probes
from dispatch.roles import Layout, Role
from event_manager.config import Settings
from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.test_delivery import hook, rows, settled, trigger


@pytest.mark.parametrize(("layout", "roles"), [
    (Layout(1, 1), [Role.FIRST, Role.RETRIES]),
    (Layout(2, 1), [Role.FIRST, Role.FIRST, Role.RETRIES]),
    (Layout(1, 2), [Role.FIRST, Role.RETRIES, Role.RETRIES]),
    (Layout(3, 0), [Role.BOTH, Role.BOTH, Role.BOTH]),
])
def test_each_process_finds_its_role_from_its_place(layout: Layout, roles: list[Role]) -> None:
    assert [layout.role(i) for i in range(len(roles))] == roles
    # Dramatiq's processes started again (SIGHUP) are numbered on from the first ones.
    assert [layout.role(len(roles) + i) for i in range(len(roles))] == roles
    assert layout.role(None) is Role.BOTH
    assert Layout.decode(layout.encode()) == layout


@pytest.mark.parametrize("text", [None, "", "1", "0,1", "1,-1", "a,b", "1,1,1"])
def test_a_missing_or_broken_layout_means_both_queues(text: str | None) -> None:
    assert Layout.decode(text) is None


def processes_of(settings: Settings) -> dict[int, int]:
    """The session worker's Dramatiq processes: pid → nice value."""
    found = {}
    marker = f"EVENT_MANAGER_DATABASE={settings.database}".encode()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            if b"dispatch.actors" not in command or marker not in \
                    (entry / "environ").read_bytes().split(b"\0"):
                continue
        except (FileNotFoundError, PermissionError, ProcessLookupError, NotADirectoryError):
            continue
        value = probes.nice(int(entry.name))
        if value is not None:
            found[int(entry.name)] = value
    return found


@pytest.fixture
def roles(worker: Path, settings: Settings) -> dict[Role, int]:
    """The pid of the session worker's first-attempts process and of its retry process."""
    found = processes_of(settings)
    assert len(found) == 3, found  # Dramatiq's main process and the two it started
    base = min(found.values())
    [retries] = [pid for pid, nice in found.items() if nice == base + settings.retry_nice]
    children = {pid for pid in found if pid != retries and probes.parent(pid) in found}
    [first] = children
    assert probes.parent(retries) == probes.parent(first)
    return {Role.FIRST: first, Role.RETRIES: retries}


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_the_default_worker_is_one_process_for_first_attempts_and_one_for_retries(
        roles: dict[Role, int], worker: Path, settings: Settings) -> None:
    log = worker.read_text()
    assert "this process takes first attempts\n" in log
    assert f"this process takes retries at nice +{settings.retry_nice}\n" in log
    assert settings.retry_nice == 10


def test_retries_are_taken_only_by_the_retry_process(
        roles: dict[Role, int], tenant: TenantHandle, receiver: Receiver, settings: Settings,
        redis_client: Any) -> None:
    """With the retry process stopped, a retry's message stays on the later queue's
    delay queue after it is due: the other process does not take it. (Recovery sends it
    2 s after its time, through the first attempts' queue: that is what it is for.)"""
    path = f"/{tenant.code}/roles"
    receiver.script(path, Reply(503, headers={"Retry-After": "1"}))
    hook(tenant, receiver, "roles")

    def waiting() -> list[dict[str, Any]]:
        found = redis_client.hvals(f"dramatiq:{settings.later_queue_name}.DQ.msgs")
        return [m for m in map(json.loads, found) if row["id"] in m["args"][1]]

    with stopped(roles[Role.RETRIES]):
        trigger_id = trigger(tenant, "HANGUP")["triggerId"]
        receiver.wait_for(path, 1)  # the first attempt: the other process is at work
        row = wait_until(lambda: next((r for r in rows(tenant, trigger_id)
                                       if r["status"] == "RETRYING"), None))
        [message] = wait_until(waiting, timeout=5)
        time.sleep(max(0.0, message["options"]["eta"] / 1000 + 1.0 - time.time()))
        assert waiting() == [message]  # due a second ago, and not taken
    [row] = settled(tenant, trigger_id)
    assert row["status"] == "SUCCEEDED"
    wait_until(lambda: waiting() == [], timeout=10, what="the retry process takes it")


def test_first_attempts_are_taken_only_by_the_first_attempts_process(
        roles: dict[Role, int], tenant: TenantHandle, receiver: Receiver) -> None:
    path = f"/{tenant.code}/firsts"
    hook(tenant, receiver, "firsts")
    with stopped(roles[Role.FIRST]):
        trigger_id = trigger(tenant, "HANGUP")["triggerId"]
        time.sleep(3)
        assert receiver.received(path) == []
        assert rows(tenant, trigger_id)[0]["status"] == "QUEUED"
    [row] = settled(tenant, trigger_id)
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 1)

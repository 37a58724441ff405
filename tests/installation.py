"""An installation of a test's own: API and worker processes on the shared services,
under a database prefix of its own, with settings the session's worker does not have
(a retry schedule, slots, the pause).

It can also stand for several machines: ``apis`` API processes (``event-manager serve``
each, on a port of its own) and ``workers`` worker commands (``event-manager worker``
each, in a process group of its own, so that one can be killed with what it forked),
sharing nothing but the database, the broker and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from event_manager.config import Settings, environment
from tests.conftest import Client, run_cli
from tests.support import CLI, api_process, stop, wait_until


@dataclass
class Installation:
    settings: Settings
    env: dict[str, str]
    logs: Path
    urls: list[str]
    """One per API process; the first is ``url``."""
    key: str = ""
    """A SYSTEM_ADMIN key."""
    processes: int = 1
    """Worker processes of each worker command (``worker --processes``)."""
    workers: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None],
                                                          repr=False)
    """One per worker command: its process while it runs, else None."""

    @property
    def url(self) -> str:
        """The first API process's URL."""
        return self.urls[0]

    @property
    def system(self) -> Client:
        """A client of the first API with the SYSTEM_ADMIN key."""
        return Client(self.url, self.key)

    @property
    def worker(self) -> subprocess.Popen[bytes] | None:
        """The first worker command's process."""
        return self.workers[0]

    @property
    def worker_log(self) -> Path:
        return self.log_of(0)

    def log_of(self, which: int) -> Path:
        """Worker command ``which``'s log: ``worker.log``, then ``worker-2.log``, ..."""
        return self.logs / ("worker.log" if which == 0 else f"worker-{which + 1}.log")

    def _which(self, which: int | None) -> list[int]:
        return list(range(len(self.workers))) if which is None else [which]

    def start_worker(self, which: int | None = None) -> None:
        """Worker command ``which`` (each one not running when None), in a process group
        of its own (``kill_worker``); back once each of its processes is ready."""
        for index in self._which(which):
            if self.workers[index] is not None:
                continue
            log = self.log_of(index)
            log.touch()
            with log.open("a") as out:
                ready = log.read_text().count("ready for action") + self.processes
                self.workers[index] = subprocess.Popen(
                    [*CLI, "worker", "--processes", str(self.processes), "--threads", "2"],
                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            wait_until(lambda log=log, ready=ready: log.read_text().count("ready for action")
                       >= ready, 60, f"the processes of worker command {index + 1} are ready")

    def stop_worker(self, which: int | None = None) -> None:
        for index in self._which(which):
            process, self.workers[index] = self.workers[index], None
            if process is not None:
                stop(process)

    def kill_worker(self, which: int | None = None) -> None:
        """SIGKILL to worker command ``which`` (each one running when None) and the
        processes it forked: nothing is handed back."""
        killed = False
        for index in self._which(which):
            process, self.workers[index] = self.workers[index], None
            if process is not None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
                killed = True
        assert killed, "no worker command was running"

    def worker_of(self, pid: int) -> int | None:
        """The index of the worker command whose process group holds process ``pid``
        (Linux's /proc), or None."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        for index, process in enumerate(self.workers):
            if process is not None and process.pid == group:
                return index
        return None


@contextmanager
def installation(settings: Settings, mongo: Any, redis_client: redis.Redis, logs: Path,
                 suffix: str, processes: int = 1, apis: int = 1, workers: int = 1,
                 extra_env: dict[str, str] | None = None,
                 **updates: Any) -> Iterator[Installation]:
    """``apis`` API processes and ``workers`` worker commands (of ``processes`` worker
    processes each) with the session's settings but ``updates``, and ``extra_env`` (other
    variables, such as ``OTEL_*``), on the database ``<session's>_<suffix>``; their
    databases and Redis keys removed on leaving."""
    own = settings.model_copy(update={"database": f"{settings.database}_{suffix}",
                                      "worker_metrics_port": 0, **updates})
    env = {**os.environ, **environment(own), **(extra_env or {})}
    with ExitStack() as undo:
        undo.callback(_clean, own, mongo, redis_client)
        urls = []
        for index in range(apis):
            log = logs / ("api.log" if index == 0 else f"api-{index + 1}.log")
            url, _ = undo.enter_context(api_process(env, log))
            urls.append(url)
        place = Installation(own, env, logs, urls, processes=processes,
                             workers=[None] * workers)
        undo.callback(place.stop_worker)
        place.start_worker()
        made = run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", suffix)
        place.key = made.stdout.strip().splitlines()[-1]
        yield place


def _clean(own: Settings, mongo: Any, redis_client: redis.Redis) -> None:
    for name in (own.system_database, *own.tenant_database_names):
        mongo.drop_database(name)
    leftovers = [*redis_client.scan_iter(f"*{own.queue_name}*"),
                 *redis_client.scan_iter(f"{own.database}:*")]
    if leftovers:
        redis_client.delete(*leftovers)

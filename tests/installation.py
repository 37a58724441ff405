"""An installation of a test's own: API and worker processes on the shared services,
under a database prefix of its own, with settings the session's worker does not have
(a retry schedule, slots, the pause)."""

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
    url: str
    key: str = ""
    """A SYSTEM_ADMIN key."""
    processes: int = 1
    """Worker processes (``worker --processes``)."""
    worker: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def system(self) -> Client:
        """A client with the SYSTEM_ADMIN key."""
        return Client(self.url, self.key)

    @property
    def worker_log(self) -> Path:
        return self.logs / "worker.log"

    def start_worker(self) -> None:
        """The worker, in a process group of its own (``kill_worker``); back once each of
        its processes is ready."""
        with self.worker_log.open("a") as out:
            ready = self.worker_log.read_text().count("ready for action") + self.processes
            self.worker = subprocess.Popen(
                [*CLI, "worker", "--processes", str(self.processes), "--threads", "2"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.worker_log.read_text().count("ready for action") >= ready, 60,
                   "the worker's processes are ready")

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop(self.worker)
            self.worker = None

    def kill_worker(self) -> None:
        """SIGKILL to the worker and the processes it forked: nothing is handed back."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)
        self.worker = None


@contextmanager
def installation(settings: Settings, mongo: Any, redis_client: redis.Redis, logs: Path,
                 suffix: str, processes: int = 1, **updates: Any) -> Iterator[Installation]:
    """API and worker with the session's settings but ``updates``, on the database
    ``<session's>_<suffix>``; their databases and Redis keys removed on leaving."""
    own = settings.model_copy(update={"database": f"{settings.database}_{suffix}",
                                      "worker_metrics_port": 0, **updates})
    env = {**os.environ, **environment(own)}
    with ExitStack() as undo:
        undo.callback(_clean, own, mongo, redis_client)
        url, _ = undo.enter_context(api_process(env, logs / "api.log"))
        place = Installation(own, env, logs, url, processes=processes)
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

"""Heavy parsing away from the event loop: each call in a child process of its own.

Reading a Postman collection is pure Python over up to 10 MB: ``json.loads`` alone holds
the interpreter's lock for about half a second on one, and the whole read took 1.9 s on
the largest allowed file, during which no other client of the process was answered. A
thread would not help: the lock is the one the event loop needs. A child process does,
and it also bounds what one call can cost:

- CPU: at most ``size`` reads at once (``EVENT_MANAGER_POSTMAN_PARSERS``), the others
  wait; each at a lower priority than the API (``NICENESS``).
- Time: a read still running after ``timeout`` seconds is killed and the call refused
  (a process can be killed; a thread cannot).

Children come from a fork server started on first use with the parser already imported,
so a read costs a few milliseconds more than in-process, and nothing of the API's own
threads or connections is inherited. The answer is pickled back: plain data only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from event_manager.errors import BadInput

T = TypeVar("T")

PRELOAD = ["resolvers.postman", "event_manager.app"]
NICENESS = 10
"""A reader yields the CPU to the API's own work: on two cores the API answers other
clients while a 10 MB collection is read beside it."""


class ParseTimeout(BadInput):
    """Raised when a parse did not finish in time; its process was killed."""


def _child(send: Connection, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.nice(NICENESS)
    try:
        result: tuple[bool, Any] = (True, function(*args))
    except Exception as error:  # noqa: BLE001 - raised again in the API process
        result = (False, error)
    send.send(result)
    send.close()


class ParserPool:
    """Runs ``function(*args)`` in a child process: ``await pool.run(parse, text)``."""

    def __init__(self, size: int, timeout: float) -> None:
        self.timeout = timeout
        self.gate = asyncio.Semaphore(size)
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)

    def start(self) -> None:
        """Start the fork server now rather than in the first call (it then imports
        ``PRELOAD`` on its own, about a second). It ignores Ctrl-C, which reaches the
        whole foreground group: the API stops it (it exits when the API does), and a
        parse in progress is killed, never interrupted with a traceback. From the main
        thread only (signal handlers)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)

    def stop(self) -> None:
        """Stop the fork server and wait for it to exit, so that no process of the API
        outlives it (left alone, it exits only once it notices the API's end, a moment
        after). ``ForkServer._stop`` is the standard library's own way, unchanged since
        Python 3.8; nothing happens when the server never started."""
        forkserver._forkserver._stop()

    async def run(self, function: Callable[..., T], *args: Any, what: str = "input",
                  field: str | None = None) -> T:
        """The result, or the exception the function raised; ``ParseTimeout`` (naming
        ``what`` and ``field``) after ``timeout`` seconds."""
        async with self.gate:
            receive, send = self.context.Pipe(duplex=False)
            process = self.context.Process(target=_child, args=(send, function, args),
                                           daemon=True)
            try:
                await asyncio.to_thread(process.start)  # the first starts the fork server
                send.close()
                try:
                    ok, value = await asyncio.wait_for(asyncio.to_thread(self._receive, receive),
                                                       self.timeout)
                except TimeoutError:
                    raise ParseTimeout(f"the {what} took longer than {self.timeout:g} s to "
                                       "read", field=field) from None
            finally:
                if process.pid is not None:
                    process.kill()
                    await asyncio.to_thread(process.join)
                receive.close()
        if not ok:
            raise value
        return value

    def _receive(self, receive: Connection) -> tuple[bool, Any]:
        """The child's answer (its pipe is read in a thread: it may be megabytes); EOF
        when the child died without one."""
        try:
            return receive.recv()
        except EOFError:
            raise BadInput("the input could not be read (its reader stopped)") from None

"""Plain helpers shared by the tests, the fault cluster and the bench scripts: no pytest,
no fixtures, so that scripts run by hand (bench/soak.py) can use them too."""

from __future__ import annotations

import multiprocessing
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

CLI = [sys.executable, "-m", "event_manager"]
API_LOGS: dict[str, Path] = {}
"""The log file of each API process a test started, by URL: an INTERNAL error in a
reply is reported with the traceback the API logged for it."""


def times_said(message: str, timezone: str) -> list[datetime]:
    """The moments a message tells in ``timezone``, naming it (``event_manager.zones``):
    "retry 1 of 5 at 00:11:32 (Asia/Tokyo)" (today there) or "2026-12-03 05:40:00
    (Europe/Sarajevo)"."""
    zone = ZoneInfo(timezone)
    found = []
    for date, clock in re.findall(r"(?:(\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d) \("
                                  + re.escape(timezone) + r"\)", message):
        day = date or datetime.now(zone).strftime("%Y-%m-%d")
        found.append(datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=zone))
    return found


LOCAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
SERVICE_PORTS = frozenset({5672, 6379, 8000, 8080, 9090, 9191, 15672, 25672, 27017})
"""Ports the services and the README's stack listen on by default: never handed out."""
_handed_out: set[int] = set()


def _ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections (Linux's default when unknown)."""
    try:
        low, high = (int(part) for part in LOCAL_PORTS.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A port free on 127.0.0.1 for a server a test starts, outside the kernel's range
    for outgoing connections.

    A port from that range (what binding to port 0 gives) can be taken while its server
    is down: a client reconnecting to it from a port of the same range may be handed
    that very port and connect to itself (TCP's simultaneous open), and the server,
    started again, then fails with EADDRINUSE. The CI saw it with RabbitMQ restarted on
    33489 while the worker kept reconnecting."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(10_000, 65_536)
                  if port not in ephemeral and port not in SERVICE_PORTS]
    for _ in range(200):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise AssertionError("no free port outside the range for outgoing connections")


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` seconds,
    naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met in {timeout:.0f} s (last value {value!r})")
        time.sleep(interval)


def finishes_within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result (or its exception), failing the test when it has not returned
    after ``seconds``.

    For inputs that must be handled in linear time: the bound is orders of magnitude
    above what linear work takes, and far below what the backtracking it guards against
    would (hours). The call runs in a forked child, killed at the bound: a regular
    expression holds the interpreter's lock until it is done, so a thread could not be
    waited for."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        try:
            send.send((True, call()))
        except BaseException as error:  # noqa: BLE001 - handed to the parent
            send.send((False, error))

    child = context.Process(target=run, daemon=True)
    child.start()
    try:
        if not receive.poll(seconds):
            raise AssertionError(f"did not finish within {seconds} s")
        ok, value = receive.recv()
    finally:
        child.kill()
        child.join()
    if not ok:
        raise value
    return value


def stop(process: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL when ``process`` has not exited after ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def answers(url: str) -> bool:
    """Whether the API at ``url`` answers ``/healthz``."""
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def api_process(env: dict[str, str], log: Path,
                timeout: float = 90.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An ``event-manager serve`` process with ``env`` (a test's own settings) on a free
    port: its URL and process once it answers ``/healthz``; stopped on leaving. Fails
    with the log when it exits or does not answer within ``timeout`` seconds."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    API_LOGS[url] = log
    try:
        deadline = time.monotonic() + timeout
        while not answers(url):
            if process.poll() is not None:
                raise AssertionError(f"the API exited at start:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the API did not answer in {timeout:.0f} s:\n"
                                     f"{log.read_text()}")
            time.sleep(0.1)
        yield url, process
    finally:
        stop(process)
        API_LOGS.pop(url, None)


def last_logged_error(url: str, limit: int = 6_000) -> str:
    """The end of the last error the API at ``url`` logged (its traceback included), or
    "" when no log is known or it holds none."""
    log = API_LOGS.get(url)
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace")
    start = max(text.rfind(" ERROR "), text.rfind("Traceback (most recent call last)"))
    if start < 0:
        return ""
    return text[text.rfind("\n", 0, start) + 1:][-limit:]


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis server of the caller's own on a free port (data and log in ``folder``, no
    persistence): its URL once it answers; stopped on leaving. Raises ``LookupError``
    when redis-server is not installed."""
    server = shutil.which("redis-server")
    if server is None:
        raise LookupError("redis-server is not installed")
    port = free_port()
    with (folder / "redis.log").open("w") as out:
        process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
             "--save", "", "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _pings(port), 10, "the test's redis-server answers")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process, grace=10)


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Pipelines:
    """Counts the pipelines (and transactions) an asyncio Redis client sends, the client
    itself being the real one: ``count = Pipelines(client)``, then ``count.sent``."""

    def __init__(self, client: Any) -> None:
        self.sent = 0
        make = client.pipeline

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.sent += 1
            return make(*args, **kwargs)

        client.pipeline = counted

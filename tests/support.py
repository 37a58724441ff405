"""Plain helpers shared by the tests, the fault cluster and the bench scripts: no pytest,
no fixtures, so that scripts run by hand (bench/soak.py) can use them too."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

"""The HTTP layer's limits, over raw sockets against a real API process started with short
deadlines and small sizes (``event_manager/connections.py``).

On the old protocol: a 256 MiB header was read whole (API 90 → 602 MB at its peak, then
answered 200 after 149 s); 300 connections sending a header line a second were all
still open after 45 s; a body sent a byte a second was still open after 35 s.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import answers, api_process

MAX_HEADER_BYTES = 8 * 1024
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
BODY_MIN_RATE = 1000
MAX_BODY_BYTES = 64 * 1024
PER_CLIENT = 20
SLACK = 4.0
"""Seconds allowed beyond a deadline on a busy 2-core machine."""


@dataclass(frozen=True)
class Api:
    port: int
    pid: int
    log: Path

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.fixture(scope="module")
def limited_api(env: dict[str, str], mongo: Any, redis_client: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """``event-manager serve`` with limits small enough to reach quickly."""
    log = tmp_path_factory.mktemp("logs") / "limited-api.log"
    limits = {"EVENT_MANAGER_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
              "EVENT_MANAGER_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
              "EVENT_MANAGER_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
              "EVENT_MANAGER_HTTP_BODY_MIN_RATE": str(BODY_MIN_RATE),
              "EVENT_MANAGER_HTTP_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
              "EVENT_MANAGER_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT)}
    with api_process({**env, **limits}, log) as (url, process):
        yield Api(int(url.rsplit(":", 1)[1]), process.pid, log)


def connect(api: Api) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=30)


def reply_of(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """What the server sends until it closes (or ``timeout``): b"" if it just closed."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def error_of(reply: bytes) -> dict[str, Any]:
    return json.loads(reply.partition(b"\r\n\r\n")[2])["errors"][0]


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


POST = (b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
ME = json.dumps({"query": "{ me { role } }"}).encode()


# --- Headers -----------------------------------------------------------------------------

def test_a_huge_header_is_refused_431_before_it_is_read(limited_api: Api) -> None:
    """64 MiB in one header: refused once the limit passed, the rest never kept."""
    before = limited_api.rss_mb()
    with connect(limited_api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, started = 0, time.monotonic()
        try:
            while sent < 64 * 2**20 and not readable(sock):
                sock.sendall(b"a" * 2**20)
                sent += 2**20
        except OSError:
            pass  # closed by the server after its answer
        reply = reply_of(sock)
        took = time.monotonic() - started
    assert status_of(reply) == 431, reply[:200]
    error = error_of(reply)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert f"larger than {MAX_HEADER_BYTES} bytes" in error["message"]
    assert took < SLACK
    assert limited_api.rss_mb() - before < 16, "the API kept what it was sent"


def test_headers_that_end_over_the_limit_are_refused_431(limited_api: Api) -> None:
    """Sent at once, so they are complete before the parser hands them on."""
    with connect(limited_api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                     + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(100))
                     + b"\r\n")
        assert status_of(reply_of(sock)) == 431


def test_headers_just_under_the_limit_are_answered(limited_api: Api) -> None:
    response = httpx.get(f"http://127.0.0.1:{limited_api.port}/healthz",
                         headers={"X-Pad": "p" * (MAX_HEADER_BYTES - 500)}, timeout=10)
    assert response.status_code == 200


def test_a_slow_header_sender_is_dropped_at_the_deadline(limited_api: Api) -> None:
    """A header line every 0.2 s: 408 and closed after the header deadline."""
    with connect(limited_api) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            while not readable(sock) and time.monotonic() - started < HEADER_TIMEOUT + SLACK:
                sock.sendall(b"X-A: b\r\n")
                time.sleep(0.2)
        except OSError:
            pass
        reply = reply_of(sock)
        took = time.monotonic() - started
    assert status_of(reply) == 408, reply[:200]
    assert "did not arrive within 1 s" in error_of(reply)["message"]
    assert HEADER_TIMEOUT * 0.9 <= took < HEADER_TIMEOUT + SLACK


def test_a_connection_that_sends_nothing_is_dropped_at_the_header_deadline(
        limited_api: Api) -> None:
    with connect(limited_api) as sock:
        started = time.monotonic()
        reply = reply_of(sock, timeout=HEADER_TIMEOUT + SLACK)
        assert status_of(reply) == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_a_kept_alive_connection_has_the_deadline_again_for_its_next_request(
        limited_api: Api) -> None:
    with connect(limited_api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        first = b""
        while not first.endswith(b"\r\n\r\nok"):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and the rest never comes
        started = time.monotonic()
        assert status_of(reply_of(sock)) == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


# --- Bodies ------------------------------------------------------------------------------

def test_a_slow_body_is_dropped(limited_api: Api) -> None:
    """10 bytes every 0.2 s (50 B/s against a minimum of 1,000): dropped after the
    body's first second, answered 408."""
    with connect(limited_api) as sock:
        sock.sendall(POST + b"Content-Length: 50000\r\n\r\n")
        started = time.monotonic()
        try:
            while not readable(sock) and time.monotonic() - started < BODY_TIMEOUT + SLACK:
                sock.sendall(b" " * 10)
                time.sleep(0.2)
        except OSError:
            pass
        reply = reply_of(sock)
        took = time.monotonic() - started
    assert status_of(reply) == 408, reply[:200]
    assert "slower than 1000 bytes/s" in error_of(reply)["message"]
    assert BODY_TIMEOUT * 0.9 <= took < BODY_TIMEOUT + SLACK


def test_a_body_sent_above_the_minimum_rate_is_read_whole(limited_api: Api) -> None:
    """About 3,000 B/s for 3 s, well past the first second: answered as usual."""
    body = json.dumps({"query": "{ me { role } }", "pad": " " * 9000}).encode()
    with connect(limited_api) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 300):
            sock.sendall(body[start:start + 300])
            time.sleep(0.1)
        sock.settimeout(10)
        reply = sock.recv(65536)
    assert status_of(reply) == 200, reply[:300]
    assert error_of(reply)["extensions"]["code"] == "UNAUTHENTICATED"


def test_an_oversize_body_with_a_length_is_refused_before_it_is_sent(
        limited_api: Api) -> None:
    with connect(limited_api) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))
        started = time.monotonic()
        reply = reply_of(sock)
        assert time.monotonic() - started < SLACK
    assert status_of(reply) == 413, reply[:200]
    assert f"({MAX_BODY_BYTES} bytes)" in error_of(reply)["message"]


def test_a_chunked_body_is_refused_once_past_the_limit(limited_api: Api) -> None:
    """16 KiB chunks without a declared length: 413 after the limit, and the rest of the
    body is not read (the connection ends)."""
    piece = b" " * 16384
    sent = 0
    with connect(limited_api) as sock:
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while not readable(sock) and sent < 64 * 2**20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except OSError:
            pass
        reply = reply_of(sock)
    assert status_of(reply) == 413, reply[:200]
    assert MAX_BODY_BYTES < sent < 32 * 2**20


# --- Connections ---------------------------------------------------------------------------

def test_connections_of_one_client_are_bounded(limited_api: Api) -> None:
    held = [connect(limited_api) for _ in range(PER_CLIENT)]
    try:
        with connect(limited_api) as extra:
            reply = reply_of(extra)
        assert status_of(reply) == 503, reply[:200]
        assert f"more than {PER_CLIENT} connections" in error_of(reply)["message"]
        held.pop().close()
        time.sleep(0.2)
        assert answers(f"http://127.0.0.1:{limited_api.port}")
    finally:
        for sock in held:
            sock.close()

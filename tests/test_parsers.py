"""The parser processes: a call's result or exception comes back; one that runs too long is
killed at the deadline; the Postman limits allow what they name and refuse one more."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from event_manager.errors import BadInput
from event_manager.parsers import ParserPool, ParseTimeout
from resolvers.postman import (
    MAX_FOLDER_DEPTH,
    MAX_REQUESTS,
    CollectionError,
    parse_collection,
)

V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def run(pool_size: int, timeout: float, function: object, *args: object) -> object:
    async def main() -> object:
        pool = ParserPool(pool_size, timeout)
        pool.start()
        return await pool.run(function, *args, what="collection", field="collection")  # type: ignore[arg-type]

    return asyncio.run(main())


def collection(*items: object) -> str:
    return json.dumps({"info": {"name": "c", "schema": V21}, "item": list(items)})


def test_a_parse_in_a_child_process_returns_its_result() -> None:
    parsed = run(1, 30, parse_collection, collection({"name": "r", "request": "https://e.com"}))
    assert [r.url for r in parsed.requests] == ["https://e.com"]  # type: ignore[attr-defined]


def test_a_refusal_in_the_child_is_raised_in_the_caller() -> None:
    with pytest.raises(CollectionError, match="not valid JSON"):
        run(1, 30, parse_collection, "{")


def test_a_parse_past_its_deadline_is_killed_and_refused() -> None:
    started = time.monotonic()
    with pytest.raises(ParseTimeout, match="took longer than 0.5 s") as refused:
        run(1, 0.5, time.sleep, 30)
    assert isinstance(refused.value, BadInput) and refused.value.field == "collection"
    assert time.monotonic() - started < 10


def test_a_collection_at_the_limits_is_read() -> None:
    ping = {"name": "Ping", "request": "https://example.com"}
    item: dict[str, object] = {"name": "r", "request": "https://example.com"}
    for _ in range(MAX_FOLDER_DEPTH):
        item = {"name": "f", "item": [item]}
    parsed = parse_collection(collection(item, *[ping] * (MAX_REQUESTS - 1)))
    assert len(parsed.requests) == MAX_REQUESTS
    assert parsed.requests[0].folder == " / ".join(["f"] * MAX_FOLDER_DEPTH)


def test_stopping_the_pool_ends_its_fork_server_before_returning() -> None:
    """The API stops its fork server on shutdown, so no process of the API outlives it
    (tests/test_rabbitmq.py found one still running just after the API had exited)."""
    from multiprocessing import forkserver

    pool = ParserPool(1, 30)
    pool.start()
    server = forkserver._forkserver._forkserver_pid
    assert server is not None and Path(f"/proc/{server}").exists()
    pool.stop()
    assert not Path(f"/proc/{server}").exists()  # reaped, not merely told to stop
    pool.stop()  # a second stop (or one without a start) does nothing

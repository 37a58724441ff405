"""Logs: readable by default, JSON when asked; records carry tenant, trigger and
activity ids of the delivery at hand."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from event_manager import logs
from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.support import api_process
from tests.test_delivery import hook, settled, trigger


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root handler of ``logs.configure`` writing into a string (restored after)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield io.StringIO()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def configure_into(stream: io.StringIO, fmt: str) -> None:
    logs.configure("INFO", fmt)
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]


def test_json_lines_carry_the_context(captured: io.StringIO) -> None:
    configure_into(captured, "json")
    with logs.context(tenant="acme", activity_id="a1"), logs.context(trigger_id="t1"):
        logging.getLogger("event_manager.delivery").warning("CRM: %s", "404 Not Found")
    logging.getLogger("event_manager.api").info("outside")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert (first["level"], first["logger"], first["message"]) == (
        "WARNING", "event_manager.delivery", "CRM: 404 Not Found")
    assert (first["tenant"], first["trigger_id"], first["activity_id"]) == ("acme", "t1", "a1")
    assert second["message"] == "outside" and second["tenant"] is None


def test_console_lines_name_the_context_at_the_end(captured: io.StringIO) -> None:
    configure_into(captured, "console")
    with logs.context(tenant="acme", trigger_id="t1", activity_id="a1"):
        logging.getLogger("event_manager.delivery").warning("CRM: failed")
    line = captured.getvalue().strip()
    assert line.endswith("WARNING event_manager.delivery: CRM: failed "
                         "[tenant=acme trigger=t1 activity=a1]")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_no_log_line_exceeds_a_fixed_size(captured: io.StringIO, fmt: str) -> None:
    """A 20 MB message and an error quoting it: each cut, saying how large it was."""
    configure_into(captured, fmt)
    huge = "x" * 20_000_000
    log = logging.getLogger("event_manager.delivery")
    log.warning("CRM: %s", huge)
    try:
        raise ValueError(huge)
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    lines = text.splitlines()[:2] if fmt == "json" else text.split("\n", 1)
    shown = lines
    if fmt == "json":
        first, second = map(json.loads, lines)
        shown = [first["message"], second["exc_info"]]
    assert len(lines[0]) < logs.MESSAGE_CHARS + 400 and "x… [cut, 19.1 MiB in all]" in shown[0]
    assert len(lines[1]) < logs.MESSAGE_CHARS + logs.TRACEBACK_CHARS + 400
    assert "x… [cut, 19.1 MiB in all]" in shown[1]


@pytest.mark.usefixtures("worker")
def test_the_worker_logs_a_failed_delivery_with_its_ids(
        tenant: TenantHandle, receiver: Receiver, worker: Path) -> None:
    receiver.script(f"/{tenant.code}/gone", Reply(404))
    hook(tenant, receiver, "gone")
    fired = trigger(tenant, "HANGUP")
    [row] = settled(tenant, fired["triggerId"])
    expected = (f"[tenant={tenant.code} trigger={fired['triggerId']} activity={row['id']}]")
    line = wait_until(lambda: next((x for x in worker.read_text().splitlines()
                                    if expected in x), None))
    assert "WARNING event_manager.delivery: gone: 404 Not Found" in line


@pytest.mark.parametrize("setting", [None, "true"])
def test_the_access_log_is_off_unless_asked_for(env: dict[str, str], mongo: Any,
                                                redis_client: Any, tmp_path: Path,
                                                setting: str | None) -> None:
    """A PBX sends one request per call event: by default the API writes no line per
    request (a write to standard error each, at 200 requests/s); EVENT_MANAGER_ACCESS_LOG
    turns uvicorn's access log on."""
    log = tmp_path / "api.log"
    extra = {"EVENT_MANAGER_ACCESS_LOG": setting} if setting else {}
    with api_process({**env, **extra}, log) as (url, _):
        for _ in range(3):
            httpx.post(f"{url}/graphql", json={"query": "{ __typename }"}, timeout=10)
    lines = [line for line in log.read_text().splitlines() if "POST /graphql" in line]
    assert len(lines) == (3 if setting else 0), lines

"""The ``event-manager`` command as an operator uses it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import build_schema

from tests.conftest import CLI, free_port, run_cli, wait_until


def test_schema_prints_sdl_that_parses(env: dict[str, str]) -> None:
    result = run_cli(env, "schema")
    schema = build_schema(result.stdout)
    assert "createAction" in schema.mutation_type.fields


def test_version(env: dict[str, str]) -> None:
    assert re.fullmatch(r"event-manager \d+\.\d+\.\d+\n", run_cli(env, "--version").stdout)


def test_create_key_prints_the_key_last(env: dict[str, str], mongo: Any) -> None:
    result = run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "ops")
    assert re.fullmatch(r"em_[\w-]{43}", result.stdout.splitlines()[-1])


@pytest.mark.parametrize("args, reason", [
    (["--role", "ROOT", "--label", "x"], "--role must be one of"),
    (["--role", "PBX", "--label", "x"], "every other role needs one"),
    (["--role", "SYSTEM_ADMIN", "--label", "x", "--tenant", "acme"], "takes no --tenant"),
    (["--role", "PBX", "--label", "x", "--tenant", "nosuchtenant"], "no tenant with code"),
])
def test_create_key_refusals_are_one_line(env: dict[str, str], mongo: Any, args: list[str],
                                          reason: str) -> None:
    result = run_cli(env, "create-key", *args, check=False)
    assert result.returncode == 1
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unreachable_mongodb_is_one_line(env: dict[str, str]) -> None:
    down = {**env, "EVENT_MANAGER_MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}"}
    result = run_cli(down, "create-key", "--role", "SYSTEM_ADMIN", "--label", "x", check=False)
    assert result.returncode == 1
    assert "MongoDB did not answer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_setting_is_named(env: dict[str, str]) -> None:
    bad = {**env, "EVENT_MANAGER_RETRY_SCHEDULE": "5,soon"}
    result = run_cli(bad, "create-key", "--role", "SYSTEM_ADMIN", "--label", "x", check=False)
    assert result.returncode == 1
    assert "EVENT_MANAGER_RETRY_SCHEDULE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_services_status_fails_when_a_server_is_down(env: dict[str, str], tmp_path: Path) -> None:
    down = {**env, "EVENT_MANAGER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "EVENT_MANAGER_STATE_DIR": str(tmp_path)}
    result = run_cli(down, "services", "status", check=False)
    assert result.returncode == 1
    assert "Redis: down" in result.stdout
    assert "MongoDB-compatible server: up" in result.stdout


def test_up_serves_graphiql_with_a_working_admin_key(env: dict[str, str], mongo: Any,
                                                     tmp_path: Path) -> None:
    """The README's first command: services reused, a key printed, GraphiQL served."""
    port = free_port()
    process = subprocess.Popen([*CLI, "up", "--port", str(port)],
                               env={**env, "EVENT_MANAGER_STATE_DIR": str(tmp_path)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # its own group, like a terminal's
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Admin key" in x for x in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        key = next(x.split(":", 1)[1].strip() for x in lines if "Admin key" in x)
        assert (tmp_path / "admin.key").read_text().strip() == key
        url = f"http://127.0.0.1:{port}/graphql"
        for _ in range(100):
            try:
                page = httpx.get(url, headers={"Accept": "text/html"}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        reply = httpx.post(url, json={"query": "{ me { role } }"},
                           headers={"Authorization": f"Bearer {key}"}, timeout=5).json()
        assert reply == {"data": {"me": {"role": "SYSTEM_ADMIN"}}}
        spawned = descendants(process.pid)
        assert spawned, "up started no worker"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output[output.find("Traceback") - 300:][-6000:]
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in spawned),
                      timeout=30), f"worker processes left running: {spawned}"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the worker and the processes it forks)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found

"""``event_manager.services`` with real FerretDB and Redis processes on free ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bson import ObjectId
from pymongo import MongoClient

from event_manager import services
from event_manager.config import Settings, host_port
from event_manager.errors import ServiceError
from tests.support import free_port

pytestmark = pytest.mark.services


def mongo_ping(port: int) -> bool:
    with MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=2000) as client:
        return client.admin.command("ping")["ok"] == 1


def redis_ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        return client.ping()
    finally:
        client.close()


def redis_answers(port: int) -> bool:
    try:
        return redis_ping(port)
    except redis.RedisError:
        return False


def pid_of(settings: Settings, name: str) -> int:
    return int((settings.state_path / "run" / f"{name}.pid").read_text())


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def programs() -> None:
    """Find (or build) FerretDB and redis-server once; fail under CI, skip elsewhere."""
    try:
        services.ensure_ferretdb()
        services.ensure_redis()
    except ServiceError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"services tests need ferretdb and redis-server: {exc}")
        pytest.skip(f"ferretdb or redis-server unavailable: {exc}")


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Settings]:
    """Settings on free ports and a temporary state dir; whatever start spawned is stopped."""
    settings = Settings(
        mongodb_url=f"mongodb://127.0.0.1:{free_port()}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        state_dir=tmp_path / "state",
    )
    yield settings
    services.stop(settings, echo=lambda line: None)


def ports(settings: Settings) -> tuple[int, int]:
    return host_port(settings.mongodb_url, 0)[1], host_port(settings.redis_url, 0)[1]


def test_start_status_stop(isolated: Settings) -> None:
    mongo_port, redis_port = ports(isolated)
    lines: list[str] = []

    services.start(isolated, echo=lines.append)

    assert mongo_ping(mongo_port) and redis_ping(redis_port)
    assert any(line.startswith("Started MongoDB-compatible server") for line in lines), lines
    assert any(line.startswith("Started Redis") for line in lines), lines
    state = isolated.state_path
    assert (state / "logs" / "ferretdb.log").is_file() and (state / "logs" / "redis.log").is_file()
    pids = pid_of(isolated, "ferretdb"), pid_of(isolated, "redis")

    lines.clear()
    services.start(isolated, echo=lines.append)
    assert (pid_of(isolated, "ferretdb"), pid_of(isolated, "redis")) == pids
    assert lines == [
        f"MongoDB-compatible server already listening on 127.0.0.1:{mongo_port} (pid {pids[0]})",
        f"Redis already listening on 127.0.0.1:{redis_port} (pid {pids[1]})",
    ]

    lines.clear()
    assert services.status(isolated, echo=lines.append) is True
    assert lines == [
        f"MongoDB-compatible server: up on 127.0.0.1:{mongo_port} (pid {pids[0]})",
        f"Redis: up on 127.0.0.1:{redis_port} (pid {pids[1]})",
    ]

    lines.clear()
    services.stop(isolated, echo=lines.append)
    assert [line.split(" (pid")[0] for line in lines] == [
        f"Stopped MongoDB-compatible server on 127.0.0.1:{mongo_port}",
        f"Stopped Redis on 127.0.0.1:{redis_port}",
    ]
    assert not any(map(running, pids))
    assert not (state / "run" / "ferretdb.pid").exists()

    lines.clear()
    assert services.status(isolated, echo=lines.append) is False
    assert lines == [
        f"MongoDB-compatible server: down on 127.0.0.1:{mongo_port}",
        f"Redis: down on 127.0.0.1:{redis_port}",
    ]


def test_data_survives_restart(isolated: Settings) -> None:
    services.start(isolated, echo=lambda line: None)
    with MongoClient(isolated.mongodb_url) as client:
        client.kept.things.insert_one({"_id": 1, "name": "kept"})
    with redis.Redis.from_url(isolated.redis_url) as client:
        client.set("kept", "yes")
    services.stop(isolated, echo=lambda line: None)

    services.start(isolated, echo=lambda line: None)
    with MongoClient(isolated.mongodb_url) as client:
        assert client.kept.things.find_one({"_id": 1}) == {"_id": 1, "name": "kept"}
    with redis.Redis.from_url(isolated.redis_url) as client:
        assert client.get("kept") == b"yes"


def test_acknowledged_writes_survive_a_killed_server(isolated: Settings) -> None:
    """SQLite runs with synchronous(normal): a commit is not synced at once, yet a server
    killed outright (no shutdown) loses none of the writes it acknowledged."""
    services.start(isolated, echo=lambda line: None)
    with MongoClient(isolated.mongodb_url) as client:
        things = client.kept.things
        things.insert_many([{"_id": n, "state": "new"} for n in range(200)])
        for n in range(0, 200, 2):
            things.update_one({"_id": n}, {"$set": {"state": "changed"}})
        things.delete_one({"_id": 199})
    pid = pid_of(isolated, "ferretdb")
    os.kill(pid, 9)
    services._children[pid].wait(10)  # gone, its port closed: a zombie still holds it

    services.start(isolated, echo=lambda line: None)
    with MongoClient(isolated.mongodb_url) as client:
        docs = {d["_id"]: d["state"] for d in client.kept.things.find()}
    assert len(docs) == 199 and 199 not in docs
    assert all(state == ("changed" if n % 2 == 0 else "new") for n, state in docs.items())


def test_documents_are_stored_schema_last_and_read_in_either_order(
        isolated: Settings) -> None:
    """Our build writes a document's JSON text with its schema ("$s") last; a row written
    by FerretDB's own code (schema first) reads and updates the same, fields in order."""
    services.start(isolated, echo=lambda line: None)
    doc = {"_id": ObjectId(), "z": "last field first", "n": 5,
           "nested": {"b": 1, "a": [1, "x", {"c": None}]}, "a": True}
    with MongoClient(isolated.mongodb_url) as client:
        things = client.kept.things
        things.insert_one(dict(doc))
        files = isolated.state_path / "ferretdb" / "sqlite"
        with sqlite3.connect(files / "kept.sqlite") as raw:
            (table,) = raw.execute("SELECT table_name FROM _ferretdb_collections "
                                   "WHERE name = 'things'").fetchone()
            (text,) = raw.execute(f'SELECT _ferretdb_sjson FROM "{table}"').fetchone()
            stored = json.loads(text)
            assert list(stored) == ["_id", "z", "n", "nested", "a", "$s"]
            theirs = {"$s": stored.pop("$s"), **stored}  # FerretDB's own order
            raw.execute(f'UPDATE "{table}" SET _ferretdb_sjson = ?',
                        (json.dumps(theirs, separators=(",", ":")),))
        found = things.find_one({"_id": doc["_id"]})
        assert found == doc and list(found) == list(doc)
        assert list(found["nested"]) == ["b", "a"]
        things.update_one({"_id": doc["_id"]}, {"$set": {"n": 6}})
        assert things.find_one({"_id": doc["_id"]}) == {**doc, "n": 6}


def test_ferretdb_runs_with_a_roomier_collector(isolated: Settings) -> None:
    """GOGC=400: two fifths less CPU per operation (README)."""
    services.start(isolated, echo=lambda line: None)
    environ = Path(f"/proc/{pid_of(isolated, 'ferretdb')}/environ").read_bytes().split(b"\0")
    assert b"GOGC=400" in environ


def test_stop_when_nothing_runs(isolated: Settings) -> None:
    lines: list[str] = []
    services.stop(isolated, echo=lines.append)
    mongo_port, redis_port = ports(isolated)
    assert lines == [
        f"MongoDB-compatible server on 127.0.0.1:{mongo_port}: not running",
        f"Redis on 127.0.0.1:{redis_port}: not running",
    ]


@pytest.fixture
def foreign_redis(isolated: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server started by the test itself on the port that the settings name."""
    _, port = ports(isolated)
    process = subprocess.Popen(
        [services.ensure_redis(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def test_reuses_and_spares_a_server_it_did_not_start(
    isolated: Settings, foreign_redis: subprocess.Popen[bytes]
) -> None:
    _, redis_port = ports(isolated)
    lines: list[str] = []

    services.start(isolated, echo=lines.append)
    assert f"Redis already listening on 127.0.0.1:{redis_port}" in lines
    assert not (isolated.state_path / "run" / "redis.pid").exists()

    services.status(isolated, echo=lines.append)
    assert f"Redis: up on 127.0.0.1:{redis_port} (not started here)" in lines

    services.stop(isolated, echo=lines.append)
    assert f"Redis on 127.0.0.1:{redis_port}: running, not started here; left alone" in lines
    assert foreign_redis.poll() is None and redis_ping(redis_port)


def test_port_taken_by_something_else_is_a_one_line_error(isolated: Settings) -> None:
    _, redis_port = ports(isolated)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", redis_port))
        squatter.listen()
        with pytest.raises(ServiceError, match=f"127.0.0.1:{redis_port} is taken by something"):
            services.start(isolated, echo=lambda line: None)


def test_early_exit_names_the_log(isolated: Settings) -> None:
    (isolated.state_path / "ferretdb" / "state.json").mkdir(parents=True)
    log = isolated.state_path / "logs" / "ferretdb.log"
    with pytest.raises(ServiceError, match=re.escape(f"exited at start; see {log}: ")):
        services.start(isolated, echo=lambda line: None)
    assert not (isolated.state_path / "run" / "ferretdb.pid").exists()


def test_unusable_state_folder_is_a_one_line_error(isolated: Settings) -> None:
    isolated.state_path.mkdir()
    (isolated.state_path / "ferretdb").write_text("a file where a folder belongs")
    with pytest.raises(ServiceError, match="cannot create"):
        services.start(isolated, echo=lambda line: None)


def test_remote_host_is_only_checked(tmp_path: Path) -> None:
    remote = Settings(
        mongodb_url="mongodb://db.invalid:27017", redis_url="redis://cache.invalid:6379/0",
        state_dir=tmp_path,
    )
    lines: list[str] = []
    assert services.status(remote, echo=lines.append) is False
    assert lines == [
        "MongoDB-compatible server: down on db.invalid:27017",
        "Redis: down on cache.invalid:6379",
    ]
    with pytest.raises(ServiceError, match="db.invalid:27017 is not local"):
        services.start(remote, echo=lines.append)
    assert not (tmp_path / "run").exists()


def module_source(tmp_path: Path) -> Path:
    """A writable copy of the files of FerretDB's pinned module that the build patches."""
    module_at = f"{services.FERRETDB_MODULE}@{services.FERRETDB_VERSION}"
    download = subprocess.run(["go", "mod", "download", "-json", module_at],
                              capture_output=True, text=True, cwd=tmp_path, check=True)
    module = Path(json.loads(download.stdout)["Dir"])
    source = tmp_path / "src"
    for patched, _, _ in services.FERRETDB_PATCHES:
        (source / patched).parent.mkdir(parents=True, exist_ok=True)
        (source / patched).write_text((module / patched).read_text())
    for added in services.FERRETDB_FILES.values():
        (source / added).parent.mkdir(parents=True, exist_ok=True)
    return source


def test_the_patches_apply_to_the_pinned_module_once_each(tmp_path: Path) -> None:
    """Each patch's text is found exactly once and our files are added (the build itself
    compiles them: the programs fixture)."""
    source = module_source(tmp_path)
    services.apply_patches(source)
    for patched, _, new in services.FERRETDB_PATCHES:
        assert new in (source / patched).read_text()
    for name, added in services.FERRETDB_FILES.items():
        assert (source / added).read_bytes() == (services.FERRETDB_SOURCES / name).read_bytes()


def test_a_source_not_as_expected_fails_loudly(tmp_path: Path) -> None:
    source = module_source(tmp_path)
    patched, old, _ = services.FERRETDB_PATCHES[-1]
    (source / patched).write_text((source / patched).read_text().replace(old, ""))
    with pytest.raises(ServiceError, match=f"{patched} is not as expected"):
        services.apply_patches(source)


def test_the_build_stamp_names_our_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to one of our Go files gives another stamp, so the binary is rebuilt."""
    assert services._build_stamp() == services.FERRETDB_BUILD
    copy = tmp_path / "ferretdb"
    shutil.copytree(services.FERRETDB_SOURCES, copy)
    name = sorted(services.FERRETDB_FILES)[0]
    (copy / name).write_text((copy / name).read_text() + "\n// changed\n")
    monkeypatch.setattr(services, "FERRETDB_SOURCES", copy)
    assert services._build_stamp() != services.FERRETDB_BUILD

"""Local MongoDB-compatible server (FerretDB on SQLite) and Redis for a single machine.

``start`` reuses a server that already answers on the configured port; otherwise it
installs what is missing, spawns the server detached and bound to loopback, and waits
until it answers. Data, logs and pid files live under ``settings.state_path``. ``stop``
ends only processes whose pid files ``start`` wrote. Servers on non-local hosts are
never started or stopped, only checked. Linux only (pid checks read ``/proc``).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from event_manager.config import Settings, host_port
from event_manager.errors import ServiceError
from tenants.database import PUSHDOWN_RELEASE

Echo = Callable[[str], None]

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# FerretDB 1.24's SQLite backend indexes ``_id`` as ``_ferretdb_sjson->"_id"`` but looks
# it up as ``_ferretdb_sjson->'$._id'``: SQLite matches index expressions as written, so
# every lookup, update and delete by _id scans the whole table (12 updates/s at 20,000
# documents). The build makes the lookup use the index's own expression (1,216/s).
FERRETDB_ID_PATCH = (
    Path("internal/backends/sqlite/metadata/metadata.go"),
    """IDColumn = DefaultColumn + "->'$._id'\"""",
    """IDColumn = DefaultColumn + `->"_id"`""",
)


# FerretDB 1.24's ``update`` command defers closing each statement's query until the whole
# command ends, so a command of many statements holds as many SQLite connections; a few
# such commands at once take all 100 of the pool and wait for each other for good (eight
# ``bulk_write`` calls of 32 ``UpdateOne`` hang it). The build closes each statement's
# query once its update is done (closing again at the end does nothing).
FERRETDB_UPDATE_PATCH = (
    Path("internal/handler/msg_update.go"),
    """\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n""",
    """\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n"""
    """\t\tcloser.Close()\n""",
)


def _debug_builds_only(function: str) -> tuple[Path, str, str]:
    """A patch that makes FerretDB's ``function(obj, token)`` return at once outside debug
    builds. Every cursor and transaction is registered (``Track``) in a pprof profile,
    with its stack, to find leaks; in a release build that is 8 % of FerretDB's CPU time
    (a profile under load), and a leak found panics the server. Debug builds keep it."""
    head = f"func {function}(obj any, token *Token) {{\n\tcheckArgs(obj, token)\n"
    return (Path("internal/util/resource/resource.go"), head,
            head + "\n\tif !debugbuild.Enabled {\n\t\treturn\n\t}\n")


FERRETDB_SOURCES = Path(__file__).with_name("ferretdb")
FERRETDB_FILES = {
    "pushdown_sqlite.go": Path("internal/backends/sqlite/pushdown.go"),
    "pushdown_find.go": Path("internal/handler/msg_find_pushdown.go"),
    "update_batch.go": Path("internal/handler/msg_update_batch.go"),
    "update_batch_backends.go": Path("internal/backends/update_batch.go"),
    "update_batch_sqlite.go": Path("internal/backends/sqlite/update_batch.go"),
    "update_batch_fsql.go": Path("internal/util/fsql/tx_prepare.go"),
    "update_lock.go": Path("internal/handler/msg_update_lock.go"),
}
"""Our own source files, added to FerretDB's (each file's comment says what it does):
filters on indexed fields and on ``_id``, and the ``{_id: -1}`` order of a find with a
limit, answered by SQLite from the collection's indexes instead of by reading and
sorting the whole collection in FerretDB (an Activity Monitor page at 1,000,000 rows:
tens of seconds → milliseconds). The three hooks below call them."""
FERRETDB_PUSHDOWN_PATCHES = (
    (Path("internal/backends/collection.go"),
     "\tLimit  int64\n\n\tOnlyRecordIDs bool\n",
     "\tLimit  int64\n\n\t// IDSortDesc asks for descending _id order (event-manager).\n"
     "\tIDSortDesc bool\n\n\tOnlyRecordIDs bool\n"),
    (Path("internal/backends/sqlite/collection.go"),
     "\tq := prepareSelectClause(meta.TableName, params.Comment, meta.Capped(), "
     "params.OnlyRecordIDs)\n",
     "\tif q, args, err := pushdownQuery(ctx, db, meta, params); err != nil {\n"
     "\t\treturn nil, lazyerrors.Error(err)\n"
     "\t} else if q != \"\" {\n"
     "\t\trows, err := db.QueryContext(ctx, q, args...)\n"
     "\t\tif err != nil {\n\t\t\treturn nil, lazyerrors.Error(err)\n\t\t}\n\n"
     "\t\treturn &backends.QueryResult{Iter: newQueryIterator(ctx, rows, false)}, nil\n"
     "\t}\n\n"
     "\tq := prepareSelectClause(meta.TableName, params.Comment, meta.Capped(), "
     "params.OnlyRecordIDs)\n"),
    (Path("internal/handler/msg_find.go"),
     "\tqueryRes, err := coll.Query(ctx, qp)\n",
     "\tqueryRes, err := h.queryFind(ctx, coll, qp, params, capped)\n"),
)
FERRETDB_BATCH_PATCHES = (
    (Path("internal/backends/collection.go"),
     "type UpdateAllParams struct {\n\tDocs []*types.Document\n}\n",
     "type UpdateAllParams struct {\n\tDocs []*types.Document\n\n"
     "\t// Batch asks for a batched update instead of Docs (event-manager).\n"
     "\tBatch *UpdateBatch\n}\n"),
    (Path("internal/backends/sqlite/collection.go"),
     "\tq := fmt.Sprintf(`UPDATE %q SET %s = ? WHERE %s = ?`, meta.TableName, "
     "metadata.DefaultColumn, metadata.IDColumn)\n",
     "\tif params.Batch != nil {\n\t\treturn updateBatch(ctx, db, meta, params)\n\t}\n\n"
     "\tq := fmt.Sprintf(`UPDATE %q SET %s = ? WHERE %s = ?`, meta.TableName, "
     "metadata.DefaultColumn, metadata.IDColumn)\n"),
    (Path("internal/handler/msg_update.go"),
     "\tfor _, u := range params.Updates {\n",
     "\tif done, matched, modified, err := h.updateBatch(ctx, db, params); err != nil {\n"
     "\t\treturn 0, 0, nil, lazyerrors.Error(err)\n"
     "\t} else if done {\n\t\treturn matched, modified, &upserted, nil\n\t}\n\n"
     "\tfor _, u := range params.Updates {\n"),
)
"""The three hooks of the batched update (update_batch*.go): an ``update`` command of
statements by distinct ``_id`` values (a ``bulk_write`` of ``UpdateOne`` by ``_id``) is
read with one query and written in one transaction."""
# FerretDB 1.24 stores a document as JSON text that starts with its schema ("$s"), then
# its fields. SQLite computes each expression index's key from that text and keeps the
# texts it parsed in a cache, searched by comparing whole texts: every row of one shape
# then shares a long prefix with the others, and with the Activity Monitor's four indexes
# those comparisons took a third of the server's time on inserts. The build writes the
# schema last, so texts differ from their first field (the _id) on; reading takes either
# order, as rows written before are (bench/README: insert CPU per row 126 → 95 µs).
FERRETDB_SCHEMA_LAST_PATCHES = (
    # the text opens with the first field, not with the schema
    (Path("internal/handler/sjson/sjson.go"),
     "\tbuf.WriteString(`{\"$s\":`)\n\tbuf.Write(schema)\n",
     "\tbuf.WriteByte('{')\n"),
    # each field is followed by a comma instead of preceded by one
    (Path("internal/handler/sjson/sjson.go"),
     "\t\tbuf.WriteByte(',')\n\t\tbuf.WriteString(`\"`)\n",
     "\t\tbuf.WriteString(`\"`)\n"),
    # and the schema closes the text
    (Path("internal/handler/sjson/sjson.go"),
     "\t\tbuf.Write(b)\n\t}\n\n\tbuf.WriteByte('}')\n",
     "\t\tbuf.Write(b)\n\t\tbuf.WriteByte(',')\n\t}\n\n"
     "\tbuf.WriteString(`\"$s\":`)\n\tbuf.Write(schema)\n\tbuf.WriteByte('}')\n"),
)
FERRETDB_ATOMIC_PATCHES = (
    (Path("internal/handler/msg_update.go"),
     "\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n",
     "\tunlock := lockCollection(params.DB, params.Collection)\n"
     "\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n"
     "\tunlock()\n"),
    (Path("internal/handler/msg_findandmodify.go"),
     "\tres, err := h.findAndModifyDocument(connCtx, params)\n",
     "\tunlock := lockCollection(params.DB, params.Collection)\n"
     "\tres, err := h.findAndModifyDocument(connCtx, params)\n"
     "\tunlock()\n"),
)
"""Each ``update`` and ``findAndModify`` command alone among those on its collection
(update_lock.go): FerretDB reads and writes a document in separate steps, and two
connections updating one document at once lost one of the updates, where MongoDB makes
each single-document update atomic (a call's queue lost an entry: a delivery of a
PER_CALL action went out before the one ahead of it)."""
FERRETDB_LIST_BY_NAME_PATCH = (
    Path("internal/backends/sqlite/database.go"),
    "func (db *database) ListCollections(ctx context.Context, params "
    "*backends.ListCollectionsParams) (*backends.ListCollectionsResult, error) {\n",
    "func (db *database) ListCollections(ctx context.Context, params "
    "*backends.ListCollectionsParams) (*backends.ListCollectionsResult, error) {\n"
    "\tif params != nil && len(params.Name) > 0 { // event-manager: one, by its name\n"
    "\t\tres := []backends.CollectionInfo{}\n"
    "\t\tif db.r.DatabaseGetExisting(ctx, db.name) != nil {\n"
    "\t\t\tif c := db.r.CollectionGet(ctx, db.name, params.Name); c != nil {\n"
    "\t\t\t\tres = append(res, backends.CollectionInfo{\n"
    "\t\t\t\t\tName:            c.Name,\n"
    "\t\t\t\t\tUUID:            c.Settings.UUID,\n"
    "\t\t\t\t\tCappedSize:      c.Settings.CappedSize,\n"
    "\t\t\t\t\tCappedDocuments: c.Settings.CappedDocuments,\n"
    "\t\t\t\t})\n"
    "\t\t\t}\n"
    "\t\t}\n\n"
    "\t\treturn &backends.ListCollectionsResult{Collections: res}, nil\n"
    "\t}\n\n",
)
"""``find``, ``aggregate``, ``collStats``, ``explain`` and ``compact`` each ask the
backend for the one collection they work on (``ListCollections`` with a name),
and FerretDB 1.24 answered by copying the metadata of every collection of the database,
sorting them all and searching the sorted names: at 6,000 collections (500 tenants)
a find by ``_id`` cost the server 8-9.5 ms of CPU instead of 0.3-0.4 ms in a small
database. The build looks the collection up by its name in the same registry, as the
query that follows does: the same answer (the collection, or none), in constant time."""
FERRETDB_RELEASE = FERRETDB_VERSION + PUSHDOWN_RELEASE
"""The version our build reports (``buildInfo``'s ``ferretdbVersion``): the suffix tells
``tenants.database.Database`` that filters on indexed fields are answered from indexes."""
FERRETDB_PATCHES = (FERRETDB_ID_PATCH, FERRETDB_UPDATE_PATCH, _debug_builds_only("Track"),
                    _debug_builds_only("Untrack"), *FERRETDB_PUSHDOWN_PATCHES,
                    *FERRETDB_BATCH_PATCHES, *FERRETDB_SCHEMA_LAST_PATCHES,
                    *FERRETDB_ATOMIC_PATCHES, FERRETDB_LIST_BY_NAME_PATCH)


def _build_stamp() -> str:
    """What a build is made of: a change to a patch or to one of our files rebuilds."""
    digest = hashlib.sha256(repr((FERRETDB_RELEASE, FERRETDB_PATCHES)).encode())
    for name in sorted(FERRETDB_FILES):
        digest.update((FERRETDB_SOURCES / name).read_bytes())
    return (f"{FERRETDB_VERSION}+sqlite-id-index+update-close+no-tracking+pushdown"
            f"+update-batch+schema-last+list-by-name+{digest.hexdigest()[:12]}")


FERRETDB_BUILD = _build_stamp()
FERRETDB_GC = {"GOGC": "400"}
"""Go's collector for FerretDB: a heap up to five times what is live (most of its garbage
is per request) uses two fifths less CPU per operation (bench/README). No GOMEMLIMIT: a
query that reads a large collection holds it all in memory, and a limit below that made
the collector run without pause (first activity page at 100,000 rows: 9 s → 51 s)."""
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Servers spawned by this Python process, kept so that they can be reaped once stopped."""


def start(settings: Settings, echo: Echo = print) -> list[Service]:
    """Start what is not running; returns the services this call spawned."""
    return [service for service in _services(settings) if service.start(echo)]


def stop(settings: Settings, echo: Echo = print) -> None:
    for service in _services(settings):
        service.stop(echo)


def status(settings: Settings, echo: Echo = print) -> bool:
    """Print one line per service; True when both answer."""
    return all([service.status(echo) for service in _services(settings)])


@dataclass(frozen=True)
class Service:
    """One server that can run locally; subclasses say how to run and ping it."""

    label: str
    program: str
    url: str
    host: str
    port: int
    state: Path

    @property
    def local(self) -> bool:
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return self.host == "localhost"

    @property
    def bind(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host.strip("[]")

    @property
    def address(self) -> str:
        host = self.bind if self.local else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def name(self) -> str:
        return self.program.removesuffix("-server")

    @property
    def data_dir(self) -> Path:
        return self.state / self.name

    @property
    def log_file(self) -> Path:
        return self.state / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "run" / f"{self.name}.pid"

    def ping(self) -> bool:
        raise NotImplementedError

    def command(self, echo: Echo) -> list[str]:
        """The command line that runs the server, installing the program when missing."""
        raise NotImplementedError

    @property
    def environment(self) -> dict[str, str]:
        """Set in the server's environment, over this process's."""
        return {}

    def answers(self) -> bool:
        return _port_open(self.bind if self.local else self.host, self.port) and self.ping()

    def our_pid(self) -> int | None:
        """The pid in our pid file while that process is still running our server."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_running(pid, self.program) else None

    def start(self, echo: Echo) -> bool:
        """Make sure the server answers; True when this call had to spawn it."""
        if not self.local:
            if not self.answers():
                raise ServiceError(f"{self.label} at {self.address} is not local; no answer")
            echo(f"{self.label} at {self.address} is not local; it answers")
            return False
        pid = self.our_pid()
        if self.answers():
            ours = f" (pid {pid})" if pid else ""
            echo(f"{self.label} already listening on {self.address}{ours}")
            return False
        if pid is None:
            if _port_open(self.bind, self.port):
                raise ServiceError(f"{self.address} is taken by something that is not {self.label}")
            pid = self._spawn(echo)
        self._wait_ready(pid)
        echo(f"Started {self.label} on {self.address} (pid {pid}, log {self.log_file})")
        return True

    def stop(self, echo: Echo) -> None:
        if not self.local:
            echo(f"{self.label} at {self.address} is not local; left alone")
            return
        pid = self.our_pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            state = "running, not started here; left alone" if self.answers() else "not running"
            echo(f"{self.label} on {self.address}: {state}")
            return
        _terminate(pid, self.program)
        echo(f"Stopped {self.label} on {self.address} (pid {pid})")

    def status(self, echo: Echo) -> bool:
        up = self.answers()
        pid = self.our_pid() if self.local else None
        note = f" (pid {pid})" if pid else " (not started here)" if up else ""
        echo(f"{self.label}: {'up' if up else 'down'} on {self.address}{note}")
        return up

    def _spawn(self, echo: Echo) -> int:
        for folder in (self.data_dir, self.log_file.parent, self.pid_file.parent):
            _mkdir(folder)
        command = self.command(echo)
        with self.log_file.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.data_dir, start_new_session=True,
                    env={**os.environ, **self.environment},
                )
            except OSError as exc:
                raise ServiceError(f"cannot run {command[0]}: {exc.strerror}") from None
        _children[process.pid] = process
        self.pid_file.write_text(f"{process.pid}\n")
        return process.pid

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.answers():
            if not _is_running(pid, self.program):
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(f"{self.label} exited at start; {self._log_hint()}")
            if time.monotonic() > deadline:
                _terminate(pid, self.program)
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"{self.label} did not answer on {self.address} within "
                    f"{READY_TIMEOUT:.0f} s; {self._log_hint()}"
                )
            time.sleep(0.25)

    def _log_hint(self) -> str:
        try:
            tail = self.log_file.read_bytes()[-4096:].decode(errors="replace")
        except OSError:
            tail = ""
        return f"see {self.log_file}: {_last_line(tail)[:300]}"


class FerretDB(Service):
    @property
    def environment(self) -> dict[str, str]:
        return FERRETDB_GC

    def ping(self) -> bool:
        try:
            with MongoClient(
                self.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
            ) as client:
                client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def command(self, echo: Echo) -> list[str]:
        sqlite_dir = self.data_dir / "sqlite"
        _mkdir(sqlite_dir)
        return [
            ensure_ferretdb(echo), "--handler=sqlite",
            # BEGIN IMMEDIATE: concurrent writers wait for the lock (busy_timeout) instead of
            # failing with SQLITE_BUSY when a read transaction upgrades to a write in WAL mode.
            # synchronous(normal): the WAL is synced at checkpoints, not at every commit.
            # A killed process loses nothing; a power cut may lose the last commits, as
            # Redis's appendfsync everysec does; every write costs a third (bench/README).
            f"--sqlite-url=file:{quote(str(sqlite_dir))}/"
            "?_txlock=immediate&_pragma=synchronous(normal)",
            f"--state-dir={self.data_dir}",
            f"--listen-addr={self.address}", "--debug-addr=-", "--telemetry=disable",
            "--log-level=error",
        ]


class Redis(Service):
    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def command(self, echo: Echo) -> list[str]:
        return [
            ensure_redis(echo), "--bind", self.bind, "--port", str(self.port),
            "--dir", str(self.data_dir), "--appendonly", "yes", "--daemonize", "no",
            "--protected-mode", "yes",
        ]


def _services(settings: Settings) -> list[Service]:
    state = settings.state_path
    mongo_host, mongo_port = host_port(settings.mongodb_url, 27017)
    redis_host, redis_port = host_port(settings.redis_url, 6379)
    return [
        FerretDB(
            "MongoDB-compatible server", "ferretdb", settings.mongodb_url,
            mongo_host, mongo_port, state,
        ),
        Redis("Redis", "redis-server", settings.redis_url, redis_host, redis_port, state),
    ]


def ensure_ferretdb(echo: Echo = print) -> str:
    """Path of a working ``ferretdb``, building FerretDB 1.24.2 with Go when there is none.

    A plain ``go install …/cmd/ferretdb@v1.24.2`` yields a binary that panics at start-up
    (the module lacks its generated ``build/version/version.txt``), so the module source
    is copied, that file written, and the binary built from the copy into
    ``$(go env GOPATH)/bin``. A lock file keeps concurrent callers from building twice.
    """
    go = shutil.which("go")
    gopath = _run([go, "env", "GOPATH"]).stdout.strip() if go else ""
    target = Path(gopath or Path.home() / "go") / "bin" / "ferretdb"
    stamp = target.with_name(".ferretdb.build")
    if _built(target, stamp):
        return str(target)
    if go is None:
        raise ServiceError("ferretdb is not installed and Go (1.24+) is missing to build it")
    _mkdir(target.parent)
    try:
        with target.with_name(".ferretdb.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _built(target, stamp):
                echo(f"Building FerretDB {FERRETDB_VERSION} with Go; this takes a few minutes…")
                _build_ferretdb(go, target)
                stamp.write_text(FERRETDB_BUILD + "\n")
    except OSError as exc:
        raise ServiceError(f"building FerretDB failed: {exc}") from None
    if not _works(str(target)):
        raise ServiceError(f"the FerretDB binary built at {target} does not run")
    return str(target)


def _build_ferretdb(go: str, target: Path) -> None:
    module = f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"
    with tempfile.TemporaryDirectory(prefix="ferretdb-build-") as tmp:
        download = _run([go, "mod", "download", "-json", module], cwd=tmp)
        try:
            info = json.loads(download.stdout)
        except ValueError:
            info = {}
        if download.returncode != 0 or "Dir" not in info:
            reason = info.get("Error") or _last_line(download.stderr)
            raise ServiceError(f"go mod download {module} failed: {reason}")
        source = Path(tmp) / "src"
        shutil.copytree(info["Dir"], source)
        for folder, _, files in os.walk(source):
            for path in [folder, *(os.path.join(folder, name) for name in files)]:
                os.chmod(path, os.stat(path).st_mode | 0o200)
        (source / "build" / "version" / "version.txt").write_text(f"{FERRETDB_RELEASE}\n")
        apply_patches(source)
        partial = target.with_name(".ferretdb.partial")
        build = _run(
            [go, "build", "-buildvcs=false", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
            cwd=source,
        )
        if build.returncode != 0:
            raise ServiceError(f"building FerretDB failed: {_last_lines(build.stderr)}")
        os.replace(partial, target)


def apply_patches(source: Path) -> None:
    """Patch FerretDB's source folder: each patch replaces its text, found exactly once,
    and our files are added where none is; anything else is a ServiceError (the pinned
    module is not what the patches were written for)."""
    for patched, old, new in FERRETDB_PATCHES:
        code = (source / patched).read_text()
        if code.count(old) != 1:
            raise ServiceError(f"FerretDB {FERRETDB_VERSION}: {patched} is not as expected")
        (source / patched).write_text(code.replace(old, new))
    for name, added in FERRETDB_FILES.items():
        if (source / added).exists():
            raise ServiceError(f"FerretDB {FERRETDB_VERSION}: {added} exists already")
        shutil.copyfile(FERRETDB_SOURCES / name, source / added)


def ensure_redis(echo: Echo = print) -> str:
    """Path of ``redis-server``, installing Debian's package with apt-get when missing."""
    if found := shutil.which("redis-server"):
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise ServiceError("redis-server is not installed and apt-get is missing to install it")
    echo("Installing redis-server with apt-get…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = _run([apt, "install", "-y", "redis-server"], env=env)
    if result.returncode != 0:
        _run([apt, "update"], env=env)
        result = _run([apt, "install", "-y", "redis-server"], env=env)
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if result.returncode != 0 or not found:
        raise ServiceError(f"apt-get install redis-server failed: {_last_line(result.stderr)}")
    return found


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run quietly, output captured; a missing program or a 30-minute hang is a ServiceError."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800,
            **kwargs,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{Path(command[0]).name} {command[1]} failed: {exc}") from None


def _built(target: Path, stamp: Path) -> bool:
    """True when ``target`` is our build of FerretDB (the stamp names it) and runs."""
    try:
        ours = stamp.read_text().strip() == FERRETDB_BUILD
    except OSError:
        ours = False
    return ours and _works(str(target))


def _works(binary: str) -> bool:
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _last_line(text: str) -> str:
    return _last_lines(text, 1).strip()


def _last_lines(text: str, count: int = 10) -> str:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:]) if lines else "(no output)"


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create {folder}: {exc.strerror}") from None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _is_running(pid: int, program: str) -> bool:
    """True while ``pid`` is a live ``program`` process (not a zombie, not a reused pid).

    Our own children are asked directly: just after exec, ``/proc/PID/cmdline`` can
    still be empty.
    """
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _terminate(pid: int, program: str) -> None:
    """SIGTERM, then SIGKILL if the process is still there after STOP_TIMEOUT seconds."""
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while _is_running(pid, program) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _is_running(pid, program):
            break
    _children.pop(pid, None)

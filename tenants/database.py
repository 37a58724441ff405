"""The MongoDB connection and how collections are named.

One system database (``<prefix>_system``) holds ``tenants``, ``api_keys``, the
``installation``'s layout, ``config_changes`` (``dispatch.stamps``) and ``audit``, the
trail of changes that belong to no tenant (SYSTEM_ADMIN keys, ``tenants.audit``). Tenant data
lives in ``<prefix>_tenants``, in collections named from the tenant code:
``t_acme_actions``, ``t_acme_events``, ... The code is validated before it gets here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
)

from event_manager.config import Settings
from event_manager.errors import Conflict, ServiceError
from event_manager.wording import counted
from tenants.vault import Vault, keys_from

T = TypeVar("T")


def now() -> datetime:
    """The current UTC time at the precision BSON stores (milliseconds), so that what a
    write returns equals what a later read returns."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class LayoutMismatch(ServiceError):
    """``EVENT_MANAGER_TENANT_DATABASES`` differs from the installation's
    (``Database.check_layout``): the process must not start."""


def is_duplicate(error: Exception) -> bool:
    """True for a unique-index violation. MongoDB says DuplicateKeyError; FerretDB 1.24 on
    SQLite says so on insert but reports an update as InternalError 'UNIQUE constraint'."""
    return isinstance(error, DuplicateKeyError) or (
        isinstance(error, OperationFailure) and "UNIQUE constraint failed" in str(error)
    )


def is_transient(error: BaseException) -> bool:
    """True for errors that a later try may not meet: a lost connection, or a busy
    SQLite file behind FerretDB ("database is locked", SQLITE_BUSY)."""
    if isinstance(error, AutoReconnect | ConnectionFailure):
        return True
    return isinstance(error, OperationFailure) and "database is locked" in str(error)


async def patiently(call: Callable[[], Awaitable[T]], *, tries: int = 6,
                    first_delay: float = 0.1) -> T:
    """``await call()``, trying again after transient errors: 0.1 s, 0.2 s, ... 3.2 s apart.

    Only for operations that are safe to repeat (reads, and writes guarded by a state
    check such as a claim)."""
    delay = first_delay
    for _ in range(tries - 1):
        try:
            return await call()
        except (ConnectionFailure, OperationFailure) as error:
            if not is_transient(error):
                raise
        await asyncio.sleep(delay)
        delay *= 2
    return await call()


class GroupedInserts:
    """``insert(doc)`` of many tasks at once, made as one unordered ``insert_many`` for
    the documents asked for in one turn of the event loop: FerretDB writes 16 documents
    in one call for about the price of two single inserts. Each caller learns the fate of
    its own document: inserted, duplicate ``_id``, or an error of its own (a call that
    fails as a whole naming no document is made again one document at a time)."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection
        self._next: list[tuple[dict[str, Any], asyncio.Future[bool]]] | None = None

    async def insert(self, doc: dict[str, Any]) -> bool:
        """True when ``doc`` was inserted; False when its ``_id`` was there already."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = []
            loop.call_soon(self._send)
        done: asyncio.Future[bool] = loop.create_future()
        self._next.append((doc, done))
        return await done

    def _send(self) -> None:
        batch, self._next = self._next or [], None
        asyncio.ensure_future(self._insert(batch))

    async def _insert(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        errors: dict[int, dict[str, Any]] = {}
        try:
            await self.collection.insert_many([doc for doc, _ in batch], ordered=False)
        except BulkWriteError as exc:
            errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
        except BaseException as exc:
            if not _names_no_document(exc):
                _fail_all([done for _, done in batch], exc)
                return
            for doc, done in batch:  # each alone: each caller learns its own fate
                try:
                    await self.collection.insert_one(doc)
                except Exception as alone:
                    if is_duplicate(alone):
                        _answer(done, False)
                    else:
                        _fail(done, alone)
                else:
                    _answer(done, True)
            return
        for index, (_, done) in enumerate(batch):
            error = errors.get(index)
            if done.done():
                continue  # its caller was cancelled
            if error is None:
                done.set_result(True)
            elif error.get("code") == 11000 or is_duplicate(failure := _failure(error)):
                done.set_result(False)
            else:
                done.set_exception(failure)


class GroupedWrites:
    """``$set`` updates and deletes by ``_id`` of many tasks, sent as unordered
    ``bulk_write`` calls of up to ``chunk`` operations, one call at a time: what arrives
    while a call is on its way goes in the next. FerretDB applies 50 updates in one call
    for about the price of seven single ones, and the worker sends one message instead of
    fifty. (One call at a time also keeps FerretDB builds without our patch of its update
    command, ``event_manager.services``, from running out of connections, as long as few
    collections are written at once.) One failing statement fails only its caller: a call
    that fails as a whole naming no document (``_names_no_document``) is made again one
    write at a time."""

    def __init__(self, collection: AsyncCollection, chunk: int = 50) -> None:
        self.collection = collection
        self.chunk = chunk
        self._pending: list[_Write] = []
        self._sender: asyncio.Future[None] | None = None

    async def update(self, doc_id: Any, fields: dict[str, Any]) -> bool:
        """Set ``fields`` on the document; False when there is no such document."""
        return await self._submit(doc_id, fields)

    async def delete(self, doc_id: Any) -> None:
        """Delete the document, if it is there."""
        await self._submit(doc_id, None)

    async def _submit(self, doc_id: Any, fields: dict[str, Any] | None) -> bool:
        write = _Write(doc_id, fields, asyncio.get_running_loop().create_future())
        self._pending.append(write)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())
        return await write.done

    async def _send(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.chunk], self._pending[self.chunk:]
                await self._write(batch)
        finally:
            self._sender = None
            for write in self._pending:  # cancelled: nothing more is sent
                _fail(write.done, AutoReconnect("the write was cancelled"))
            self._pending = []

    async def _write(self, batch: list[_Write]) -> None:
        errors: dict[int, dict[str, Any]] = {}
        try:
            result = await self.collection.bulk_write([w.operation() for w in batch],
                                                      ordered=False)
            found = result.matched_count + result.deleted_count
        except BulkWriteError as exc:
            errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
            found = exc.details.get("nMatched", 0) + exc.details.get("nRemoved", 0)
        except BaseException as exc:
            if not _names_no_document(exc):
                _fail_all([write.done for write in batch], exc)
                return
            for write in batch:  # each alone: each caller learns its own fate
                await self._write_alone(write)
            return
        everything = found == len(batch) - len(errors)
        for index, write in enumerate(batch):
            if write.done.done():
                continue  # its caller was cancelled
            if index in errors:
                _fail(write.done, _failure(errors[index]))
            elif everything or write.fields is None:
                write.done.set_result(True)
            else:  # some update found nothing: ask again, one by one ($set is idempotent)
                await self._write_alone(write)

    async def _write_alone(self, write: _Write) -> None:
        try:
            if write.fields is None:
                await self.collection.delete_one({"_id": write.doc_id})
                found = True
            else:
                result = await self.collection.update_one({"_id": write.doc_id},
                                                          {"$set": write.fields})
                found = result.matched_count == 1
        except Exception as exc:
            _fail(write.done, exc)
        else:
            _answer(write.done, found)


def _names_no_document(error: BaseException) -> bool:
    """True for a grouped call that failed as a whole for a reason that may be one
    document's and that no ``writeErrors`` pins on it: FerretDB answers an update
    statement that fails inside ``bulk_write`` without ``nModified``, and PyMongo raises
    KeyError('nModified') for the whole call; PyMongo refuses a document over 16 MB before
    sending it. Each document is then written alone. A transient error (the database
    unreachable or busy) is every caller's, and a cancellation is no one's fault."""
    return isinstance(error, Exception) and not is_transient(error)


def _answer(done: asyncio.Future[bool], value: bool) -> None:
    if not done.done():  # its caller may have been cancelled
        done.set_result(value)


@dataclass
class _Write:
    doc_id: Any
    fields: dict[str, Any] | None
    """None: a delete."""
    done: asyncio.Future[bool]

    def operation(self) -> UpdateOne | DeleteOne:
        if self.fields is None:
            return DeleteOne({"_id": self.doc_id})
        return UpdateOne({"_id": self.doc_id}, {"$set": self.fields})


def _fail(done: asyncio.Future[Any], error: BaseException) -> None:
    if not done.done():
        done.set_exception(error)
        done.exception()  # retrieved: a caller that gave up raises no warning


def _fail_all(waiting: list[asyncio.Future[Any]], error: BaseException) -> None:
    """A grouped call failed as a whole: each caller gets the error (a cancelled call,
    as a transient one), and a cancellation goes on."""
    for done in waiting:
        _fail(done, error if isinstance(error, Exception) else
              AutoReconnect("the grouped call was cancelled"))
    if not isinstance(error, Exception):
        raise error


def _failure(error: dict[str, Any]) -> OperationFailure:
    """The error of one document of a grouped call."""
    return OperationFailure(error.get("errmsg", "write error"), error.get("code"), error)


@contextlib.contextmanager
def unique(message: str, field: str) -> Iterator[None]:
    """Turn a unique-index violation inside the block into a CONFLICT naming ``field``."""
    try:
        yield
    except OperationFailure as error:
        if is_duplicate(error):
            raise Conflict(message, field=field) from None
        raise


MAX_SEARCH = 200


def contains(text: str) -> dict[str, object]:
    """A case-insensitive substring match of user text: escaped, so never a pattern."""
    return {"$regex": re.escape(text[:MAX_SEARCH]), "$options": "i"}


def object_id(value: str) -> ObjectId | None:
    return ObjectId(value) if ObjectId.is_valid(value) else None


PUSHDOWN_RELEASE = "-event-manager-pushdown"
"""The suffix of the version of our FerretDB build, whose patches answer filters on
indexed fields and the ``{_id: -1}`` order from SQLite's indexes."""

TENANT_COLLECTIONS = ("events", "settings", "actions", "parameters", "activity", "idempotency",
                      "claims", "calls", "health", "stats", "audit")
RETIRED_COLLECTIONS = ("open",)
"""Tenant collections of earlier versions that nothing reads or writes any more: ``open``
held ``{_id: row id}`` of every row not final, for recovery, until recovery found those
rows through the activity's status index. Dropped where found (``TenantRegistry``)."""


def collection_name(code: str, kind: str) -> str:
    """The name of tenant ``code``'s collection of ``kind``: ``t_acme_actions``."""
    return f"t_{code}_{kind}"


class Database:
    """The shared client, created once per process and closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(
            settings.mongodb_url,
            tz_aware=True,
            appname="event-manager",
            serverSelectionTimeoutMS=3000,
            connectTimeoutMS=3000,
        )
        self.vault = Vault(keys_from(settings.secret_key, settings.state_path))
        self.system = self.client[settings.system_database]
        self.tenant_database_of = settings.tenant_database_of
        self.tenant_databases = settings.tenant_databases
        self.tenants: AsyncCollection = self.system["tenants"]
        self.api_keys: AsyncCollection = self.system["api_keys"]
        self.config_changes: AsyncCollection = self.system["config_changes"]
        """Changes whose config stamp Redis refused (``dispatch.stamps``), normally none."""
        self.system_audit: AsyncCollection = self.system["audit"]
        """The audit trail of changes that belong to no tenant: SYSTEM_ADMIN keys."""
        self._server: str | None = None
        from tenants.stats import StatsRecorder  # which itself uses this module's helpers
        self.stats = StatsRecorder()
        """This process's counting of the rows that end in it (``tenants.stats``)."""
        self.on_change: Callable[[str], Awaitable[None]] | None = None
        """Called with a tenant's code after each change to its configuration (see
        ``TenantStore.changed``); the API points it at ``dispatch.stamps.ConfigStamps``."""

    def collection(self, code: str, kind: str) -> AsyncCollection:
        """``collection("acme", "actions")`` is the collection ``t_acme_actions``."""
        if kind not in TENANT_COLLECTIONS:
            raise ValueError(f"unknown tenant collection {kind!r}")
        return self.tenant_data(code)[collection_name(code, kind)]

    def tenant_data(self, code: str) -> AsyncDatabase:
        """The database holding tenant ``code``'s collections (``tenant_databases``)."""
        return self.client[self.tenant_database_of(code)]

    def retired_names(self, code: str) -> list[str]:
        """The names tenant ``code``'s ``RETIRED_COLLECTIONS`` had: ``["t_acme_open"]``."""
        return [collection_name(code, kind) for kind in RETIRED_COLLECTIONS]

    async def ensure_system_indexes(self) -> None:
        """The system collections' indexes, after checking the tenants' databases
        (``check_layout``)."""
        await self.check_layout()
        await self.tenants.create_index([("code", ASCENDING)], unique=True)
        await self.api_keys.create_index([("hash", ASCENDING)], unique=True)
        await self.api_keys.create_index([("tenant", ASCENDING)])

    async def check_layout(self) -> None:
        """Raise ``LayoutMismatch`` unless ``tenant_databases`` is what the installation
        was started with: a tenant's collections are found by a hash of its code over
        that many databases, so another number would look for them in the wrong one.

        The number is recorded by the first process to check (``layout`` in the system
        database's ``installation``); an installation with tenants and no record was
        made before the setting, with one database."""
        wanted = self.tenant_databases
        installation = self.system["installation"]
        found = await installation.find_one({"_id": "layout"})
        if found is None:
            first = 1 if await self.tenants.find_one({}, {"_id": 1}) is not None else wanted
            with contextlib.suppress(DuplicateKeyError):  # another process recorded it
                await installation.insert_one({"_id": "layout", "tenant_databases": first})
            found = await installation.find_one({"_id": "layout"})
        recorded = int((found or {}).get("tenant_databases", wanted))
        if recorded != wanted:
            raise LayoutMismatch(
                f"EVENT_MANAGER_TENANT_DATABASES is {wanted}, but this installation's tenants "
                f"are in {counted(recorded, 'database')}; set it to {recorded} (tenants are "
                "not moved between databases)")

    async def reads_field_indexes(self) -> bool:
        """Whether the server answers a filter on a field other than ``_id`` from an
        index on that field: MongoDB does, and so does our build of FerretDB (its version
        ends with ``PUSHDOWN_RELEASE``, ``event_manager.services``). FerretDB 1.24 as
        released does not: it reads every document and filters them itself, so such an
        index is never read, and it slows each write of the row it covers by a quarter
        (bench/README). Unique indexes are kept everywhere."""
        ferretdb = await self._ferretdb_version()
        return ferretdb is None or ferretdb.endswith(PUSHDOWN_RELEASE)

    async def reads_range_indexes(self) -> bool:
        """Whether the server answers a range of a field other than ``_id`` from an index:
        MongoDB only (our FerretDB build pushes down only ``_id`` ranges)."""
        return await self._ferretdb_version() is None

    async def _ferretdb_version(self) -> str | None:
        """FerretDB's version (``buildInfo``), or None when the server is MongoDB."""
        if self._server is None:
            info = await self.client.admin.command("buildInfo")
            self._server = str(info.get("ferretdbVersion", ""))
        return self._server or None

    async def changed(self, code: str) -> None:
        """After a change to tenant ``code``'s configuration or registration (or to the
        API keys, ``tenants.keys.API_KEYS``): ``on_change``, if set."""
        if self.on_change is not None:
            await self.on_change(code)

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.stats.flush()
        await self.client.close()

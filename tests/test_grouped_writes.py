"""Claims of many deliveries are inserted together (tenants.database.GroupedInserts), their
outcomes written together (GroupedWrites), and each caller still learns what became of
its own document. Against the real server."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import OperationFailure

from event_manager.config import Settings
from tenants.database import GroupedInserts, GroupedWrites


class Counting:
    """The collection, with a count of its insert_many calls and their sizes."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.calls: list[int] = []

    async def insert_many(self, docs: list[dict], ordered: bool) -> Any:
        self.calls.append(len(docs))
        return await self.collection.insert_many(docs, ordered=ordered)


def run_against(settings: Settings, test: Any) -> Any:
    async def run() -> Any:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url)
        collection = client[f"{settings.database}_scratch"][f"grouped_{uuid4().hex[:8]}"]
        try:
            return await test(collection)
        finally:
            await client.drop_database(collection.database.name)
            await client.close()

    return asyncio.run(run())


def test_inserts_asked_for_together_are_one_call_with_each_fate_told(
        settings: Settings) -> None:
    async def test(collection: Any) -> tuple[list, list, list]:
        await collection.insert_one({"_id": "taken"})
        counting = Counting(collection)
        group = GroupedInserts(counting)  # type: ignore[arg-type]
        fates = await asyncio.gather(
            *(group.insert({"_id": i}) for i in ["a", "taken", "b", "a", "c"]),
            return_exceptions=True)
        later = await group.insert({"_id": "d"})
        stored = sorted(d["_id"] for d in await collection.find({}).to_list(None))
        return [*fates, later], counting.calls, stored

    fates, calls, stored = run_against(settings, test)
    assert fates == [True, False, True, False, True, True]
    assert calls == [5, 1]
    assert stored == ["a", "b", "c", "d", "taken"]


def test_a_document_refused_for_its_own_fault_fails_alone(settings: Settings) -> None:
    async def test(collection: Any) -> list:
        group = GroupedInserts(collection)
        return await asyncio.gather(group.insert({"_id": "x"}),
                                    group.insert({"_id": "y", "$bad": 1}),
                                    group.insert({"_id": "z"}), return_exceptions=True)

    x, y, z = run_against(settings, test)
    assert (x, z) == (True, True)
    assert isinstance(y, OperationFailure) and "$bad" in str(y)


def test_a_failed_call_reaches_every_caller(settings: Settings) -> None:
    class Down:
        async def insert_many(self, docs: list[dict], ordered: bool) -> Any:
            raise OperationFailure("database is locked")

    async def test() -> list:
        group = GroupedInserts(Down())  # type: ignore[arg-type]
        return await asyncio.gather(*(group.insert({"_id": i}) for i in range(3)),
                                    return_exceptions=True)

    assert [type(e) for e in asyncio.run(test())] == [OperationFailure] * 3


class CountingBulk:
    """The collection, with the sizes of its bulk_write calls."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.calls: list[int] = []

    async def bulk_write(self, operations: list, ordered: bool) -> Any:
        self.calls.append(len(operations))
        return await self.collection.bulk_write(operations, ordered=ordered)

    async def update_one(self, query: dict, update: dict) -> Any:
        return await self.collection.update_one(query, update)


def test_updates_and_deletes_go_as_few_bulk_writes_each_told_its_fate(
        settings: Settings) -> None:
    async def test(collection: Any) -> tuple:
        await collection.insert_many([{"_id": i, "n": 0} for i in range(120)])
        counting = CountingBulk(collection)
        group = GroupedWrites(counting, chunk=50)  # type: ignore[arg-type]
        found = await asyncio.gather(*(group.update(i, {"n": i}) for i in range(100)),
                                     group.update("missing", {"n": 1}),
                                     *(group.delete(i) for i in range(100, 120)))
        stored = {d["_id"]: d["n"] for d in await collection.find({}).to_list(None)}
        return found, counting.calls, stored

    found, calls, stored = run_against(settings, test)
    assert found[:101] == [True] * 100 + [False]
    assert stored == {i: i for i in range(100)}  # updated; 100-119 deleted
    assert calls == [50, 50, 21]  # one call at a time, 50 at most


def test_a_failed_bulk_write_reaches_every_caller() -> None:
    class Down:
        async def bulk_write(self, operations: list, ordered: bool) -> Any:
            raise OperationFailure("database is locked")

    async def test() -> list:
        group = GroupedWrites(Down())  # type: ignore[arg-type]
        return await asyncio.gather(group.update(1, {"a": 1}), group.delete(2),
                                    return_exceptions=True)

    assert [type(e) for e in asyncio.run(test())] == [OperationFailure] * 2


def test_many_updates_at_once_do_not_hang_the_server(settings: Settings) -> None:
    """FerretDB 1.24 kept each statement's query open until its update command ended:
    eight bulk_write calls of 32 updates at once took every connection of its pool and
    hung for good. Our build closes each one as it goes (event_manager.services)."""
    async def test(collection: Any) -> int:
        await collection.insert_many([{"_id": i, "n": 0} for i in range(256)])

        async def bulk(start: int) -> int:
            result = await collection.bulk_write(
                [UpdateOne({"_id": i}, {"$set": {"n": 1}}) for i in range(start, start + 32)],
                ordered=False)
            return result.modified_count

        return sum(await asyncio.wait_for(asyncio.gather(
            *(bulk(s) for s in range(0, 256, 32))), timeout=60))

    assert run_against(settings, test) == 256


def test_one_failing_update_fails_only_its_caller(settings: Settings) -> None:
    """FerretDB answers a bulk_write whose one statement fails (a field name with '.')
    without ``nModified``; PyMongo then raised KeyError for the whole call, and all ten
    callers failed. MongoDB names the statement (writeErrors); both end the same way."""
    async def test(collection: Any) -> tuple[list, dict]:
        await collection.insert_many([{"_id": i, "n": 0} for i in range(10)])
        group = GroupedWrites(collection)
        fates = await asyncio.gather(
            *(group.update(i, {"n": 1} if i != 4 else {"p": {"a.b": 1}}) for i in range(10)),
            group.delete("missing"), return_exceptions=True)
        return fates, {d["_id"]: d["n"] for d in await collection.find({}).to_list(None)}

    fates, stored = run_against(settings, test)
    assert fates[:4] + fates[5:10] == [True] * 9 and fates[10] is None  # None: a delete
    assert isinstance(fates[4], OperationFailure) and "a.b" in str(fates[4])
    assert stored == {i: int(i != 4) for i in range(10)}


def test_an_insert_failing_as_a_whole_is_made_again_one_by_one(settings: Settings) -> None:
    """PyMongo refuses a key with NUL while encoding, for the whole insert_many: no
    writeErrors say whose document it was."""
    async def test(collection: Any) -> tuple[list, list]:
        await collection.insert_one({"_id": "taken"})
        group = GroupedInserts(collection)
        fates = await asyncio.gather(
            group.insert({"_id": "a"}), group.insert({"_id": "b", "x\x00": 1}),
            group.insert({"_id": "taken"}), group.insert({"_id": "c"}),
            return_exceptions=True)
        return fates, sorted(d["_id"] for d in await collection.find({}).to_list(None))

    fates, stored = run_against(settings, test)
    assert [fates[0], fates[2], fates[3]] == [True, False, True]
    assert isinstance(fates[1], InvalidDocument)
    assert stored == ["a", "c", "taken"]

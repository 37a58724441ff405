"""Claims of many deliveries are inserted together (tenants.database.GroupedInserts), and
each caller still learns what became of its own document. Against the real server."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from event_manager.config import Settings
from tenants.database import GroupedInserts


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

"""Commands on one collection find it by its name (``FERRETDB_LIST_BY_NAME_PATCH`` in
``event_manager.services``): FerretDB 1.24 copied and sorted the metadata of every
collection of the database for each ``find``, so a find by ``_id`` in a database of
6,000 collections cost the server 25 times what it costs in a small one. Against the
real server: the answers stay MongoDB's, among many collections, for a missing
collection, a missing database, a capped collection and a tailable cursor."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from pymongo import CursorType, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from event_manager.config import Settings
from event_manager.services import FERRETDB_LIST_BY_NAME_PATCH, FERRETDB_PATCHES

pytestmark = pytest.mark.services


@pytest.fixture
def database(settings: Settings, mongo: MongoClient) -> Iterator[Database]:
    db = mongo[f"{settings.database}_list{uuid4().hex[:6]}"]
    for i in range(40):
        db[f"c{i:02d}"].insert_one({"_id": i, "n": i})
    yield db
    mongo.drop_database(db.name)


def test_the_build_carries_the_patch() -> None:
    assert FERRETDB_LIST_BY_NAME_PATCH in FERRETDB_PATCHES


def test_a_collection_among_many_is_found_by_each_command(database: Database) -> None:
    c = database["c07"]
    assert c.find_one({"_id": 7}) == {"_id": 7, "n": 7}
    assert list(c.find({})) == [{"_id": 7, "n": 7}]
    assert list(c.aggregate([{"$match": {"n": {"$gte": 0}}}])) == [{"_id": 7, "n": 7}]
    assert c.count_documents({}) == 1
    assert database.command("collStats", "c07")["count"] == 1
    assert database.command("explain", {"find": "c07", "filter": {"_id": 7}})["ok"] == 1
    named = database.command("listCollections", filter={"name": "c07"})
    assert [found["name"] for found in named["cursor"]["firstBatch"]] == ["c07"]
    assert len(database.list_collection_names()) == 40


def test_a_missing_collection_or_database_is_empty_as_before(database: Database,
                                                             mongo: MongoClient) -> None:
    assert database["nothing"].find_one({}) is None
    assert list(database["nothing"].aggregate([{"$match": {}}])) == []
    assert mongo[f"{database.name}_none"]["c"].find_one({}) is None
    assert f"{database.name}_none" not in mongo.list_database_names()


def test_a_tailable_cursor_needs_a_capped_collection_as_before(database: Database) -> None:
    with pytest.raises(OperationFailure, match="tailable cursor requested on non capped"):
        list(database["c07"].find({}, cursor_type=CursorType.TAILABLE))
    database.create_collection("capped", capped=True, size=100_000)
    database["capped"].insert_one({"_id": 1})
    cursor = database["capped"].find({}, cursor_type=CursorType.TAILABLE)
    assert next(cursor) == {"_id": 1}
    cursor.close()

"""The batched update built into FerretDB (event_manager/ferretdb/update_batch*.go): an
``update`` command whose statements each update one document by a distinct ``_id`` (a
``bulk_write`` of ``UpdateOne``, as the worker sends its outcomes) is read with one query
and written in one transaction. Against the real server.

Each case compares what the server answers and stores with MongoDB's documented
semantics, computed here: counts of matched and modified documents, operators applied in
statement order, an ObjectId never equal to its hex string, a failing statement of an
ordered bulk stopping the ones after it, upserts, the same ``_id`` twice, the indexes
kept in step. Two cases can only pass with the batch: its statements become visible
together, and concurrent batches on the same documents lose no update (FerretDB's own
path reads each document outside the transaction that writes it).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from bson import ObjectId
from pymongo import MongoClient, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from event_manager.config import Settings

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def db(settings: Settings, mongo: MongoClient) -> Iterator[Database]:
    """A scratch database, dropped at the end."""
    database = mongo[f"{settings.database}_batch"]
    mongo.drop_database(database.name)
    yield database
    mongo.drop_database(database.name)


def fresh(db: Database, docs: list[dict[str, Any]], *indexes: str) -> Collection:
    collection = db[f"c{uuid4().hex[:8]}"]
    for field in indexes:
        collection.create_index([(field, 1), ("_id", -1)])
    if docs:
        collection.insert_many([dict(d) for d in docs])
    return collection


def stored(collection: Collection) -> dict[Any, dict[str, Any]]:
    return {d["_id"]: d for d in collection.find({})}


def test_statements_by_id_give_mongodb_counts_and_documents(db: Database) -> None:
    """MongoDB: each statement changes the one document with its _id; matched counts the
    documents found, modified those whose content changed; operators apply as written."""
    a, b, c, gone = ObjectId(), ObjectId(), ObjectId(), ObjectId()
    docs = [{"_id": a, "status": "QUEUED", "n": 1, "tags": ["x"], "old": 1},
            {"_id": b, "status": "QUEUED", "n": 5},
            {"_id": c, "status": "SENT", "n": 0},
            {"_id": "claim:1", "owner": "w1"}]
    collection = fresh(db, docs, "status")
    result = collection.bulk_write([
        UpdateOne({"_id": a}, {"$set": {"status": "SUCCEEDED"}, "$inc": {"n": 2},
                               "$push": {"tags": "y"}, "$unset": {"old": ""}}),
        UpdateOne({"_id": gone}, {"$set": {"status": "FAILED"}}),
        UpdateOne({"_id": c}, {"$set": {"status": "SENT"}}),  # no change
        ReplaceOne({"_id": b}, {"status": "FAILED", "why": "404"}),
        UpdateOne({"_id": "claim:1"}, {"$rename": {"owner": "holder"}}),
    ])
    assert (result.matched_count, result.modified_count, result.upserted_count) == (4, 3, 0)
    assert stored(collection) == {
        a: {"_id": a, "status": "SUCCEEDED", "n": 3, "tags": ["x", "y"]},
        b: {"_id": b, "status": "FAILED", "why": "404"},
        c: {"_id": c, "status": "SENT", "n": 0},
        "claim:1": {"_id": "claim:1", "holder": "w1"},
    }
    # the status index follows: each value finds exactly its documents
    for status, expected in {"SUCCEEDED": [a], "FAILED": [b], "SENT": [c], "QUEUED": []}.items():
        assert [d["_id"] for d in collection.find({"status": status})] == expected


def test_an_object_id_and_its_hex_string_are_different_ids(db: Database) -> None:
    """MongoDB: {_id: ObjectId(h)} never matches a document whose _id is the string h, nor
    the reverse (FerretDB stores both as the same JSON text)."""
    oid, other = ObjectId(), ObjectId()
    collection = fresh(db, [{"_id": oid, "v": 0}, {"_id": str(other), "v": 0}])
    result = collection.bulk_write([UpdateOne({"_id": str(oid)}, {"$set": {"v": 1}}),
                                    UpdateOne({"_id": other}, {"$set": {"v": 1}})])
    assert (result.matched_count, result.modified_count) == (0, 0)
    assert stored(collection) == {oid: {"_id": oid, "v": 0},
                                  str(other): {"_id": str(other), "v": 0}}


def test_a_failing_statement_stops_an_ordered_bulk_where_it_fails(db: Database) -> None:
    """MongoDB: an ordered bulk applies the statements before the failing one and none
    after it, and reports the failure as a write error (code 14, TypeMismatch). The batch
    gives such a command back to FerretDB's own path, whose answer is asked raw here: it
    lacks the counts and gives index 0 (FerretDB's, unchanged), which pymongo's
    bulk_write cannot read."""
    ids = [ObjectId() for _ in range(5)]
    collection = fresh(db, [{"_id": i, "n": 0 if k != 2 else "text"} for k, i in enumerate(ids)])
    answer = db.command({"update": collection.name, "ordered": True,
                         "updates": [{"q": {"_id": i}, "u": {"$inc": {"n": 1}}} for i in ids]})
    assert [e["code"] for e in answer["writeErrors"]] == [14]
    assert [stored(collection)[i]["n"] for i in ids] == [1, 1, "text", 0, 0]


def test_the_same_id_twice_and_upserts_apply_in_order(db: Database) -> None:
    """MongoDB: statements run in order, so a second statement on a document sees the
    first one's change, and an upsert inserts the document it did not find."""
    a, new = ObjectId(), ObjectId()
    collection = fresh(db, [{"_id": a, "n": 1}])
    result = collection.bulk_write([UpdateOne({"_id": a}, {"$inc": {"n": 1}}),
                                    UpdateOne({"_id": a}, {"$mul": {"n": 5}})])
    assert (result.matched_count, result.modified_count) == (2, 2)
    result = collection.bulk_write([UpdateOne({"_id": a}, {"$inc": {"n": 1}}),
                                    UpdateOne({"_id": new}, {"$set": {"n": 7}}, upsert=True)])
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert list(result.upserted_ids.values()) == [new]  # at key 0: FerretDB's own path
    assert stored(collection) == {a: {"_id": a, "n": 11}, new: {"_id": new, "n": 7}}


def test_the_statements_of_a_batch_become_visible_together(db: Database) -> None:
    """A reader counting the documents a bulk of 1,000 statements has changed sees none or
    all of them: the batch commits once. (FerretDB's own path commits each statement, and
    a reader sees the count climb.)"""
    ids = [ObjectId() for _ in range(1000)]
    collection = fresh(db, [{"_id": i, "round": 0} for i in ids], "round")
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(collection.count_documents({"round": 1}))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = collection.bulk_write([UpdateOne({"_id": i}, {"$set": {"round": 1}})
                                        for i in ids])
    finally:
        stop.set()
        reader.join()
    seen.add(collection.count_documents({"round": 1}))
    assert result.modified_count == 1000
    assert seen <= {0, 1000} and 1000 in seen


def test_concurrent_batches_on_the_same_documents_lose_no_update(db: Database) -> None:
    """MongoDB: each update of a document is atomic, so increments from concurrent bulks
    all count, whatever the interleaving."""
    ids = [ObjectId() for _ in range(60)]
    collection = fresh(db, [{"_id": i, "n": 0, "status": "a"} for i in ids], "status")
    clients, rounds = 4, 8
    errors: list[BaseException] = []

    def bump(seed: int) -> None:
        order = list(ids)
        shuffle = random.Random(seed).shuffle
        try:
            for r in range(rounds):
                shuffle(order)
                collection.bulk_write([UpdateOne({"_id": i}, {"$inc": {"n": 1},
                                                              "$set": {"status": "abc"[r % 3]}})
                                       for i in order])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=bump, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {d["n"] for d in collection.find({})} == {clients * rounds}
    by_status = sum(collection.count_documents({"status": s}) for s in "abc")
    assert by_status == len(ids)

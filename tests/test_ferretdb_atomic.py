"""Single-document updates are atomic, as MongoDB makes them: the lock built into
FerretDB (event_manager/ferretdb/update_lock.go). FerretDB 1.24 reads a document and
writes it back in separate steps, so two connections updating one document at once lost
one of the updates: a call's queue (``tenants.calls``) lost the entry the API pushed
while a worker pulled another, and a PER_CALL delivery went out before the one ahead of
it (``bench/calls.py`` saw 11 calls of 10,000 out of order). Against the real server,
with several connections at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection

from event_manager.config import Settings

pytestmark = pytest.mark.services

CLIENTS, EACH = 6, 40


@pytest.fixture
def collection(settings: Settings, mongo: MongoClient) -> Iterator[Collection]:
    database = mongo[f"{settings.database}_atomic"]
    yield database[f"c{uuid4().hex[:8]}"]
    mongo.drop_database(database.name)


def at_once(settings: Settings, name: tuple[str, str],
            work: Callable[[Collection, int, int], None]) -> None:
    """``work(collection, client, n)`` for n in range(EACH), from CLIENTS clients of
    their own (one connection each), all at once."""
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def run(client_number: int) -> None:
        client: MongoClient = MongoClient(settings.mongodb_url, maxPoolSize=1)
        try:
            own = client[name[0]][name[1]]
            start.wait()
            for n in range(EACH):
                work(own, client_number, n)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_pushes_and_pulls_on_one_document_lose_none(
        settings: Settings, collection: Collection) -> None:
    """Half the clients push entries to one array while the others push and pull their
    own back out (join and leave of a call's queue): every kept entry stays."""
    collection.insert_one({"_id": "queue", "waiting": []})

    def join_and_leave(own: Collection, client: int, n: int) -> None:
        value = f"{client}:{n}"
        doc = own.find_one_and_update({"_id": "queue"}, {"$push": {"waiting": value}},
                                      return_document=ReturnDocument.AFTER)
        assert value in doc["waiting"]
        if client % 2:
            own.find_one_and_update({"_id": "queue", "waiting": value},
                                    {"$pull": {"waiting": value}})

    at_once(settings, (collection.database.name, collection.name), join_and_leave)
    kept = collection.find_one({"_id": "queue"})["waiting"]
    assert sorted(kept) == sorted(f"{c}:{n}" for c in range(0, CLIENTS, 2)
                                  for n in range(EACH))


def test_concurrent_increments_of_one_document_all_count(
        settings: Settings, collection: Collection) -> None:
    collection.insert_one({"_id": "counter", "n": 0})

    def bump(own: Collection, client: int, n: int) -> None:
        own.update_one({"_id": "counter"}, {"$inc": {"n": 1}})

    at_once(settings, (collection.database.name, collection.name), bump)
    assert collection.find_one({"_id": "counter"})["n"] == CLIENTS * EACH


def test_concurrent_upserts_of_one_document_make_one(
        settings: Settings, collection: Collection) -> None:
    """The first join of a call's queue creates it: racing ones push to the same one."""
    def upsert(own: Collection, client: int, n: int) -> None:
        own.find_one_and_update({"_id": f"q{n}"}, {"$push": {"waiting": client}}, upsert=True)

    at_once(settings, (collection.database.name, collection.name), upsert)
    for n in range(EACH):
        assert sorted(collection.find_one({"_id": f"q{n}"})["waiting"]) == list(range(CLIENTS))

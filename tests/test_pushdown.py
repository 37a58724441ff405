"""The query pushdown built into FerretDB (event_manager/ferretdb/pushdown_sqlite.go and
pushdown_find.go) keeps MongoDB's answers. Against the real server.

Each case asks a query that the patch hands to SQLite (equality and $in on a field
leading an index, ranges and $in on an ObjectId _id, the {_id: -1} order of a find with a
limit) and compares its answer with MongoDB's, found two ways: computed here from the
documents inserted, by MongoDB's rule; and asked of a twin collection holding the same
documents without any index (nothing pushed down for its other fields) and, for orders,
without a limit (FerretDB's own in-memory sort). The documents are the traps of the
patch: arrays, missing fields and nulls, strings whose JSON text has escapes, ObjectIds
next to strings of the same hex digits, _ids of other types than ObjectId, $in values
whose documents interleave.
"""

from __future__ import annotations

import operator
import os
import random
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from event_manager.config import Settings

pytestmark = pytest.mark.services

Doc = dict[str, Any]
Match = Callable[[Doc], bool]
MISSING = object()


@pytest.fixture(scope="module")
def db(settings: Settings, mongo: MongoClient) -> Iterator[Database]:
    """A scratch database, dropped at the end."""
    database = mongo[f"{settings.database}_pushdown"]
    mongo.drop_database(database.name)
    yield database
    mongo.drop_database(database.name)


def object_ids(n: int, start: int = 0x60000000) -> list[ObjectId]:
    """n ObjectIds in increasing order (one second apart), each with random other bytes."""
    return [ObjectId(struct.pack(">I", start + i) + os.urandom(8)) for i in range(n)]


def collections(db: Database, docs: list[Doc],
                *indexes: list[tuple[str, int]]) -> tuple[Collection, Collection]:
    """The documents in a new collection with the given indexes, and in a twin with none."""
    name = f"c{uuid4().hex[:8]}"
    indexed, plain = db[name], db[f"{name}_plain"]
    for keys in indexes:
        indexed.create_index(keys)
    indexed.insert_many([dict(d) for d in docs])
    plain.insert_many([dict(d) for d in docs])
    return indexed, plain


# MongoDB's rules, written out


def bson_order(value: Any) -> tuple[int, Any]:
    """MongoDB's sort key of a value: the rank of its BSON type (MinKey < Null < Numbers <
    String < Object < Array < BinData < ObjectId < Boolean < Date < Timestamp < Regex <
    MaxKey), then its value within the type (strings by their UTF-8 bytes, ObjectIds by
    their bytes)."""
    if value is None:
        return (1, 0)
    if isinstance(value, bool):  # before int: True is an int in Python
        return (8, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value.encode())
    if isinstance(value, dict):
        return (4, 0)  # at most one embedded document _id per collection here
    if isinstance(value, ObjectId):
        return (7, value.binary)
    if isinstance(value, datetime):
        return (9, value)
    raise TypeError(f"no rank for {value!r}")


def equal(a: Any, b: Any) -> bool:
    """MongoDB's equality of two values: the same type and value (no "1" == 1, no
    ObjectId == its hex string, no True == 1)."""
    return type(a) is type(b) and a == b


def eq(field: str, value: Any) -> Match:
    """MongoDB's {field: value}: the field equals value, or is an array with an element
    equal to it; {field: null} also matches a document without the field."""
    def match(doc: Doc) -> bool:
        got = doc.get(field, MISSING)
        if value is None and got is MISSING:
            return True
        if isinstance(got, list):
            return equal(got, value) or any(equal(e, value) for e in got)
        return equal(got, value)
    return match


def any_of(field: str, values: list[Any]) -> Match:
    """MongoDB's {field: {$in: values}}: {field: v} for one of the values."""
    return lambda doc: any(eq(field, v)(doc) for v in values)


def both(*matches: Match) -> Match:
    return lambda doc: all(m(doc) for m in matches)


def newest_first(docs: list[Doc], match: Match, n: int | None = None) -> list[Any]:
    """MongoDB's answer to find(...).sort("_id", -1).limit(n): the matching _ids, largest
    first by BSON order."""
    found = sorted((d["_id"] for d in docs if match(d)), key=bson_order, reverse=True)
    return found[:n] if n else found


def unordered(ids: list[Any]) -> list[Any]:
    """A list of _ids in a fixed order, to compare answers that have none (duplicates
    stay)."""
    return sorted(ids, key=bson_order)


def ids(cursor: Any) -> list[Any]:
    return [d["_id"] for d in cursor]


def assert_answers(indexed: Collection, plain: Collection, docs: list[Doc], query: Doc,
                   match: Match, limits: tuple[int | None, ...] = (1, 3, 10, None)) -> None:
    """find(query), in no order and sorted by {_id: -1} with each limit, answers on the
    indexed collection as MongoDB's rule says and as the twin without indexes does."""
    want = newest_first(docs, match)
    assert unordered(ids(indexed.find(query))) == unordered(want), query
    assert unordered(ids(plain.find(query))) == unordered(want), query
    for n in limits:
        got = ids(indexed.find(query).sort("_id", -1).limit(n or 0))
        assert got == want[:n], (query, n)
        # the twin, without a limit: FerretDB's own filter and sort
        assert ids(plain.find(query).sort("_id", -1))[:n] == want[:n], (query, n)


# 1. Arrays

PIVOT = ObjectId(struct.pack(">I", 0x60000006) + b"\0" * 8)
"""Above the sixth of array_docs()'s _ids, below the seventh."""

ARRAY_QUERIES = [
    pytest.param({"tags": "a"}, eq("tags", "a"), id="equal"),
    pytest.param({"tags": {"$eq": "a"}}, eq("tags", "a"), id="$eq"),
    pytest.param({"tags": {"$in": ["a"]}}, any_of("tags", ["a"]), id="$in-one"),
    pytest.param({"tags": {"$in": ["a", "b"]}}, any_of("tags", ["a", "b"]), id="$in-two"),
    pytest.param({"tags": "b", "_id": {"$lt": PIVOT}},
                 both(eq("tags", "b"), lambda d: d["_id"] < PIVOT), id="equal-and-id-range"),
]


def array_docs() -> list[Doc]:
    o = object_ids(9)
    return [{"_id": o[0], "tags": "a"}, {"_id": o[1], "tags": ["a", "b"]},
            {"_id": o[2], "tags": ["b"]}, {"_id": o[3]}, {"_id": o[4], "tags": None},
            {"_id": o[5], "tags": [{"a": "a"}, "A"]}, {"_id": o[6], "tags": "b"},
            {"_id": o[7], "tags": []}, {"_id": o[8], "tags": {"a": "a"}}]


@pytest.mark.parametrize(("query", "match"), ARRAY_QUERIES)
def test_equality_matches_arrays_holding_the_value(db: Database, query: Doc,
                                                   match: Match) -> None:
    """MongoDB: {f: v}, {f: {$eq: v}} and {f: {$in: [v]}} match a document whose f is v
    or an array with an element v ("a" and ["a", "b"]), not an array without such an
    element ([{"a": "a"}, "A"]), nor an embedded document, null or a missing f. (FerretDB
    refuses to store an array of arrays such as [["a"]].)"""
    docs = array_docs()
    indexed, plain = collections(db, docs, [("tags", 1), ("_id", -1)])
    assert_answers(indexed, plain, docs, query, match)
    if query == {"tags": "a"}:  # the rule itself, spelled out once
        assert newest_first(docs, match) == [docs[1]["_id"], docs[0]["_id"]]


def test_an_array_stored_after_queries_is_still_matched(db: Database) -> None:
    """MongoDB: {f: v} matches an array holding v, also when the collection held no
    array in f at the previous query (the guard is not remembered)."""
    o = object_ids(6)
    docs = [{"_id": o[i], "tags": t} for i, t in enumerate(["a", "b", "a", "c"])]
    indexed, plain = collections(db, docs, [("tags", 1)])
    assert_answers(indexed, plain, docs, {"tags": "a"}, eq("tags", "a"))
    later = [{"_id": o[4], "tags": ["x", "a"]}, {"_id": o[5], "tags": ["a"]}]
    indexed.insert_many([dict(d) for d in later])
    plain.insert_many([dict(d) for d in later])
    docs += later
    for query, match in [({"tags": "a"}, eq("tags", "a")),
                         ({"tags": {"$in": ["a", "c"]}}, any_of("tags", ["a", "c"]))]:
        assert_answers(indexed, plain, docs, query, match)
    assert ids(indexed.find({"tags": "a"}).sort("_id", -1).limit(2)) == [o[5], o[4]]


# 2. Missing fields and null


NULL_QUERIES = [
    pytest.param({"f": None}, eq("f", None), id="null"),
    pytest.param({"f": {"$eq": None}}, eq("f", None), id="$eq-null"),
    pytest.param({"f": {"$in": ["x", None]}}, any_of("f", ["x", None]), id="$in-with-null"),
    pytest.param({"f": "x"}, eq("f", "x"), id="equal"),
    pytest.param({"f": {"$in": ["x", "y"]}}, any_of("f", ["x", "y"]), id="$in"),
    pytest.param({"f": ""}, eq("f", ""), id="empty-string"),
]


@pytest.mark.parametrize(("query", "match"), NULL_QUERIES)
def test_null_matches_missing_and_null_only(db: Database, query: Doc, match: Match) -> None:
    """MongoDB: {f: null} and a null among $in's values match a document whose f is null
    or missing; {f: "x"} matches neither."""
    o = object_ids(7)
    docs = [{"_id": o[0], "f": "x"}, {"_id": o[1], "f": None}, {"_id": o[2]},
            {"_id": o[3], "f": "y"}, {"_id": o[4], "f": ""}, {"_id": o[5], "f": "null"},
            {"_id": o[6], "g": "x"}]
    indexed, plain = collections(db, docs, [("f", 1)])
    assert_answers(indexed, plain, docs, query, match)
    if query == {"f": {"$in": ["x", None]}}:
        assert newest_first(docs, match) == [o[6], o[2], o[1], o[0]]


# 3. Strings with escapes, and not ASCII


STRINGS = ['a"b', "a\\b", "<tag>", "a&b", "é", "\u2028", "\u2029", "tab\tx", "line\nx",
           "", "plain", "Plain", "plain ", "\x7f", "\x01", "a/b", "'q'", "%_", "null",
           "[a]", "{a}", "日本", "😀", "café\u0301"]


def test_each_string_equals_only_itself(db: Database) -> None:
    """MongoDB: {f: s}, {f: {$eq: s}} and {f: {$in: [s]}} match exactly the documents
    whose f is the string s, byte for byte (case, trailing space, escapes in the stored
    JSON text and characters outside ASCII included); the same for _id."""
    o = object_ids(len(STRINGS))
    docs = [{"_id": o[i], "s": s} for i, s in enumerate(STRINGS)]
    indexed, plain = collections(db, docs, [("s", 1)])
    by_id = db[f"c{uuid4().hex[:8]}_by_id"]
    by_id.insert_many([{"_id": s} for s in STRINGS])
    for i, s in enumerate(STRINGS):
        for query in ({"s": s}, {"s": {"$eq": s}}, {"s": {"$in": [s]}},
                      {"s": {"$in": [s, "absent"]}}):
            assert ids(indexed.find(query)) == [o[i]], query
            assert ids(indexed.find(query).sort("_id", -1).limit(5)) == [o[i]], query
            assert ids(plain.find(query)) == [o[i]], query
        for query in ({"_id": s}, {"_id": {"$in": [s, "absent"]}}):
            assert ids(by_id.find(query)) == [s], query
    several = STRINGS[::3]
    assert_answers(indexed, plain, docs, {"s": {"$in": several}}, any_of("s", several))


# 4. ObjectIds and strings of the same hex digits


def test_an_object_id_never_equals_its_hex_string(db: Database) -> None:
    """MongoDB: an ObjectId equals only an ObjectId, a string only a string: {ref:
    ObjectId(h)} does not match ref: h and {ref: h} does not match ref: ObjectId(h)."""
    h = "65a1b2c3d4e5f60718293a4b"
    o = object_ids(5)
    docs = [{"_id": o[0], "ref": ObjectId(h)}, {"_id": o[1], "ref": h},
            {"_id": o[2], "ref": h.upper()}, {"_id": o[3], "ref": ObjectId(h[::-1])},
            {"_id": o[4], "ref": h[::-1]}]
    indexed, plain = collections(db, docs, [("ref", 1)])
    for query, match in [
            ({"ref": ObjectId(h)}, eq("ref", ObjectId(h))),
            ({"ref": h}, eq("ref", h)),
            ({"ref": {"$eq": ObjectId(h)}}, eq("ref", ObjectId(h))),
            ({"ref": {"$in": [ObjectId(h)]}}, any_of("ref", [ObjectId(h)])),
            ({"ref": {"$in": [h]}}, any_of("ref", [h])),
            ({"ref": {"$in": [ObjectId(h), ObjectId(h[::-1])]}},
             any_of("ref", [ObjectId(h), ObjectId(h[::-1])]))]:
        assert_answers(indexed, plain, docs, query, match)
    assert ids(indexed.find({"ref": ObjectId(h)})) == [o[0]]
    assert ids(indexed.find({"ref": h})) == [o[1]]


def test_in_of_an_object_id_and_its_hex_string_returns_each_document_once(
        db: Database) -> None:
    """MongoDB: {ref: {$in: [ObjectId(h), h]}} matches both documents, each once, also
    sorted by {_id: -1} with a limit."""
    h = "65a1b2c3d4e5f60718293a4b"
    o = object_ids(3)
    docs = [{"_id": o[0], "ref": ObjectId(h)}, {"_id": o[1], "ref": h},
            {"_id": o[2], "ref": "other"}]
    indexed, plain = collections(db, docs, [("ref", 1)])
    assert_answers(indexed, plain, docs, {"ref": {"$in": [ObjectId(h), h]}},
                   any_of("ref", [ObjectId(h), h]))


# 5. _ids of other types than ObjectId, sorted by {_id: -1}


OTHER_IDS = [
    pytest.param(5, id="int"),
    pytest.param(-2.5, id="double"),
    pytest.param("zzz", id="string"),
    pytest.param("f" * 24, id="hex-string-above"),
    pytest.param("0" * 24, id="hex-string-below"),
    pytest.param("6000000a" + "0" * 16, id="hex-string-among"),
    pytest.param(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), id="datetime"),
    pytest.param(datetime(1970, 1, 2, tzinfo=UTC), id="early-datetime"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="null"),
    pytest.param({"k": "v"}, id="document"),
    pytest.param({"#": 1}, id="document-sorting-low"),
]


@pytest.mark.parametrize("other", OTHER_IDS)
def test_sort_by_id_desc_follows_bson_order_across_types(db: Database, other: Any) -> None:
    """MongoDB: sort {_id: -1} orders by type first (Date > Boolean > ObjectId > Object >
    String > Numbers > Null), then within the type; a limit takes the first of that
    order, whatever the types of the _ids."""
    o = object_ids(20)
    docs = [{"_id": oid, "status": "xy"[i % 2]} for i, oid in enumerate(o)]
    docs.append({"_id": other, "status": "x"})
    indexed, plain = collections(db, docs, [("status", 1)])
    limits = (1, 3, 11, len(docs), 50)
    assert_answers(indexed, plain, docs, {}, lambda d: True, limits)
    assert_answers(indexed, plain, docs, {"status": "x"}, eq("status", "x"), limits)
    assert_answers(indexed, plain, docs, {"status": {"$in": ["x", "y"]}},
                   any_of("status", ["x", "y"]), limits)
    first = other if bson_order(other)[0] > bson_order(o[0])[0] else o[-1]
    assert ids(indexed.find({}).sort("_id", -1).limit(1)) == [first]
    found = indexed.find_one({"status": {"$in": ["x", "y"]}}, sort=[("_id", -1)])
    assert found is not None and found["_id"] == first


def test_id_ranges_on_object_ids_match_object_ids_only(db: Database) -> None:
    """MongoDB: $lt, $lte, $gt and $gte with an ObjectId match only ObjectId _ids (type
    bracketing), never a string, number, date or boolean _id."""
    o = object_ids(10)
    others = [5, "zzz", "0" * 24, "f" * 24, "6000000a" + "0" * 16, None, True,
              datetime(2031, 1, 1, tzinfo=UTC), {"k": 1}]
    docs = [{"_id": oid} for oid in o] + [{"_id": v} for v in others]
    indexed, plain = collections(db, docs, [("status", 1)])
    for op, test in [("$lt", operator.lt), ("$lte", operator.le), ("$gt", operator.gt),
                     ("$gte", operator.ge)]:
        for pivot in (o[0], o[4], o[9]):
            query = {"_id": {op: pivot}}

            def match(d: Doc, test: Any = test, pivot: ObjectId = pivot) -> bool:
                return isinstance(d["_id"], ObjectId) and test(d["_id"], pivot)

            assert_answers(indexed, plain, docs, query, match, (1, 3, None))


# 6. ObjectId _ids: ranges, $in and paging


ID_RANGES = [("$lt", operator.lt), ("$lte", operator.le), ("$gt", operator.gt),
             ("$gte", operator.ge)]


@pytest.fixture(scope="module")
def two_hundred(db: Database) -> tuple[Collection, Collection, list[Doc]]:
    """200 documents with random ObjectIds (any bytes, one status of four), indexed on
    status, and their twin."""
    rng = random.Random(7)
    docs = [{"_id": ObjectId(rng.randbytes(12)), "status": rng.choice("abcd"),
             "kind": rng.choice("pqr"), "n": i} for i in range(200)]
    indexed, plain = collections(db, docs, [("status", 1), ("_id", -1)], [("kind", 1)])
    return indexed, plain, docs


@pytest.mark.parametrize(("op", "test"), ID_RANGES, ids=[op for op, _ in ID_RANGES])
def test_id_range_with_sort_and_limit(two_hundred: Any, op: str, test: Any) -> None:
    """MongoDB: {_id: {$lt|$lte|$gt|$gte: oid}} compares ObjectIds by their bytes, the
    bound itself in or out as the operator says; sorted by {_id: -1}, limit k."""
    indexed, plain, docs = two_hundred
    sorted_ids = sorted(d["_id"] for d in docs)
    pivots = [sorted_ids[0], sorted_ids[57], sorted_ids[-1], ObjectId(b"\0" * 12),
              ObjectId(b"\xff" * 12), ObjectId(bytes.fromhex("7f" + "ff" * 11))]
    for pivot in pivots:
        def match(d: Doc, pivot: ObjectId = pivot) -> bool:
            return bool(test(d["_id"].binary, pivot.binary))

        assert_answers(indexed, plain, docs, {"_id": {op: pivot}}, match, (1, 7, 150, None))
        assert_answers(indexed, plain, docs, {"_id": {op: pivot}, "status": "b"},
                       both(match, eq("status", "b")), (1, 7, None))
    low, high = sorted_ids[20], sorted_ids[120]
    assert_answers(indexed, plain, docs, {"_id": {"$gt": low, "$lte": high}},
                   lambda d: low < d["_id"] <= high, (1, 7, None))


def test_in_on_object_id(two_hundred: Any) -> None:
    """MongoDB: {_id: {$in: [...]}} matches each listed _id present, once."""
    indexed, plain, docs = two_hundred
    chosen = [d["_id"] for d in docs[::11]] + [ObjectId(b"\x01" * 12)]
    assert_answers(indexed, plain, docs, {"_id": {"$in": chosen}}, any_of("_id", chosen),
                   (1, 5, None))
    assert_answers(indexed, plain, docs, {"_id": {"$in": chosen}, "status": {"$in": ["a", "c"]}},
                   both(any_of("_id", chosen), any_of("status", ["a", "c"])), (1, 5, None))
    one = [docs[3]["_id"]]
    assert_answers(indexed, plain, docs, {"_id": {"$in": one}}, any_of("_id", one))
    assert ids(indexed.find({"_id": docs[3]["_id"]})) == one


def test_paging_by_id_cursor_visits_each_document_once(two_hundred: Any) -> None:
    """MongoDB: pages of 7 sorted by {_id: -1}, each after the previous page's last _id
    ({_id: {$lt: last}}), list every document once, largest _id first."""
    indexed, _, docs = two_hundred
    for query, match in [({}, lambda d: True),
                         ({"status": {"$in": ["a", "d"]}}, any_of("status", ["a", "d"])),
                         ({"status": "c"}, eq("status", "c"))]:
        seen: list[ObjectId] = []
        while True:
            page_query = dict(query, _id={"$lt": seen[-1]}) if seen else query
            page = ids(indexed.find(page_query).sort("_id", -1).limit(7))
            assert len(page) <= 7
            if not page:
                break
            seen += page
        assert seen == newest_first(docs, match), query


# 7. $in with several values, sorted by {_id: -1}: one ordered query per value, merged


def test_in_with_sort_and_limit_merges_values_in_id_order(two_hundred: Any) -> None:
    """MongoDB: {f: {$in: [...]}} sorted by {_id: -1} with a limit is the first of all
    the matching documents in that order, whichever value each matched; also with an
    _id bound, with a second $in (each combination of values) and with values no
    document has."""
    indexed, plain, docs = two_hundred
    bound = sorted(d["_id"] for d in docs)[120]
    below = {"$lt": bound}
    cases = [
        ({"status": {"$in": ["a", "c"]}}, any_of("status", ["a", "c"])),
        ({"status": {"$in": ["d", "a", "b"]}}, any_of("status", ["d", "a", "b"])),
        ({"status": {"$in": ["a", "zz", "c"]}}, any_of("status", ["a", "zz", "c"])),
        ({"status": {"$in": ["a", "c"]}, "_id": below},
         both(any_of("status", ["a", "c"]), lambda d: d["_id"] < bound)),
        ({"status": {"$in": ["a", "c"]}, "kind": {"$in": ["p", "r"]}},
         both(any_of("status", ["a", "c"]), any_of("kind", ["p", "r"]))),
        ({"status": {"$in": ["a", "b", "c"]}, "kind": {"$in": ["q", "r"]}, "_id": below},
         both(any_of("status", ["a", "b", "c"]), any_of("kind", ["q", "r"]),
              lambda d: d["_id"] < bound)),
        ({"status": {"$in": ["a", "b"]}, "kind": "q"},
         both(any_of("status", ["a", "b"]), eq("kind", "q"))),
        ({"status": {"$in": ["a", "b"], "$eq": "b"}},
         both(any_of("status", ["a", "b"]), eq("status", "b"))),
        ({"status": {"$in": ["a", "b"], "$ne": "b"}},
         both(any_of("status", ["a", "b"]), lambda d: d["status"] != "b")),
        ({"status": {"$in": ["a", "b"]}, "n": {"$gte": 100}},
         both(any_of("status", ["a", "b"]), lambda d: d["n"] >= 100)),
        # more combinations than one query is split into (10 x 10 > 64)
        ({"status": {"$in": list("abcdefghij")}, "kind": {"$in": list("pqrstuvwxy")}},
         both(any_of("status", list("abcdefghij")), any_of("kind", list("pqrstuvwxy")))),
        # more values than are pushed down (100)
        ({"status": {"$in": ["a"] + [f"v{i}" for i in range(150)]}},
         any_of("status", ["a"])),
        ({"status": {"$in": []}}, lambda d: False),
    ]
    for query, match in cases:
        assert_answers(indexed, plain, docs, query, match, (1, 5, 40, None))
    query = {"status": {"$in": ["a", "c"]}}
    commented = indexed.find(query).sort("_id", -1).limit(5).comment('*/ FROM "x" /*')
    assert ids(commented) == newest_first(docs, any_of("status", ["a", "c"]), 5)
    assert ids(indexed.database["absent"].find(query).sort("_id", -1).limit(5)) == []


@pytest.fixture(scope="module")
def paired(db: Database) -> tuple[Collection, Collection, list[Doc]]:
    """Documents indexed on (status, _id) and on (source, _id), so that a query on both
    walks the index of the rarer value and checks the other field; with sources missing
    and null, and two values that are each common but never together (e with s), and
    their twin."""
    rng = random.Random(11)
    docs: list[Doc] = []
    for i in range(300):
        doc: Doc = {"_id": ObjectId(rng.randbytes(12)), "status": rng.choice("abcd"),
                    "source": rng.choice("pqr"), "n": i}
        if i % 37 == 0:
            del doc["source"]
        elif i % 41 == 0:
            doc["source"] = None
        docs.append(doc)
    docs += [{"_id": ObjectId(rng.randbytes(12)), "status": "e", "source": "p"} for _ in range(40)]
    docs += [{"_id": ObjectId(rng.randbytes(12)), "status": "a", "source": "s"} for _ in range(40)]
    indexed, plain = collections(db, docs, [("status", 1), ("_id", -1)],
                                 [("source", 1), ("_id", -1)])
    return indexed, plain, docs


def test_two_indexed_fields_answer_as_one_does(paired: Any) -> None:
    """MongoDB: a filter on two fields matches the documents that satisfy both, sorted by
    {_id: -1} with a limit, whichever field's index the server walks and however common
    each value is alone: pairs that occur, pairs that never do, $in on both, with an
    _id bound, with null (missing or null) on the second."""
    indexed, plain, docs = paired
    bound = sorted(d["_id"] for d in docs)[200]
    cases = [
        ({"status": "a", "source": "p"}, both(eq("status", "a"), eq("source", "p"))),
        ({"status": "e", "source": "s"}, lambda d: False),
        ({"source": "s", "status": "e"}, lambda d: False),
        ({"status": {"$in": ["e", "b"]}, "source": {"$in": ["s", "q"]}},
         both(any_of("status", ["e", "b"]), any_of("source", ["s", "q"]))),
        ({"status": {"$in": ["a", "e"]}, "source": "s", "_id": {"$lt": bound}},
         both(any_of("status", ["a", "e"]), eq("source", "s"), lambda d: d["_id"] < bound)),
        ({"status": "a", "source": None}, both(eq("status", "a"), eq("source", None))),
        ({"status": "b", "source": {"$in": ["zz", "r"]}},
         both(eq("status", "b"), any_of("source", ["zz", "r"]))),
    ]
    for query, match in cases:
        assert_answers(indexed, plain, docs, query, match, (1, 5, 40, None))
    seen: list[ObjectId] = []
    query: Doc = {"status": "e", "source": {"$in": ["p", "s"]}}
    while page := ids(indexed.find(dict(query, **({"_id": {"$lt": seen[-1]}} if seen else {})))
                      .sort("_id", -1).limit(7)):
        seen += page
    assert seen == newest_first(docs, both(eq("status", "e"), any_of("source", ["p", "s"])))


def test_two_indexed_fields_with_an_array_in_one(db: Database) -> None:
    """MongoDB: {status: v, source: w} also matches a document whose source is an array
    holding w."""
    docs = [{"_id": oid, "status": "ab"[i % 2], "source": ["s", "p"] if i == 5 else "s"}
            for i, oid in enumerate(object_ids(30))]
    indexed, plain = collections(db, docs, [("status", 1), ("_id", -1)],
                                 [("source", 1), ("_id", -1)])
    for source in "ps":
        assert_answers(indexed, plain, docs, {"status": "b", "source": source},
                       both(eq("status", "b"), eq("source", source)), (1, 5, None))


def test_in_with_a_value_twice_returns_each_document_once(two_hundred: Any) -> None:
    """MongoDB: a value listed twice in $in matches its documents once, sorted by
    {_id: -1} with a limit too."""
    indexed, plain, docs = two_hundred
    for values in (["a", "a"], ["a", "c", "a"]):
        assert_answers(indexed, plain, docs, {"status": {"$in": values}},
                       any_of("status", values), (1, 5, 40, None))


def test_in_on_object_ids_of_an_indexed_field(db: Database) -> None:
    """MongoDB: {ref: {$in: [ObjectIds]}} with sort {_id: -1} and a limit: the largest
    _ids among the documents referring to any of them."""
    refs = object_ids(4, start=0x50000000)
    o = object_ids(60)
    rng = random.Random(3)
    docs = [{"_id": oid, "ref": rng.choice(refs + ["65a1b2c3d4e5f60718293a4b"])}
            for oid in o]
    indexed, plain = collections(db, docs, [("ref", 1), ("_id", -1)])
    wanted = [refs[0], refs[2]]
    assert_answers(indexed, plain, docs, {"ref": {"$in": wanted}}, any_of("ref", wanted),
                   (1, 5, 20, None))


# 8. Fields without an index


def test_fields_without_index_are_still_filtered(db: Database) -> None:
    """MongoDB: every condition of the filter holds, on indexed fields or not; a field
    that only follows another in an index is no different."""
    o = object_ids(40)
    rng = random.Random(5)
    docs = [{"_id": oid, "status": rng.choice("xy"), "other": rng.choice("yz"),
             "second": rng.choice("pq")} for oid in o]
    indexed, plain = collections(db, docs, [("status", 1)], [("other_key", 1), ("second", 1)])
    for query, match in [
            ({"status": "x", "other": "y"}, both(eq("status", "x"), eq("other", "y"))),
            ({"other": "y"}, eq("other", "y")),
            ({"second": "p"}, eq("second", "p")),
            ({"status": {"$in": ["x", "y"]}, "other": {"$in": ["z"]}, "second": "q"},
             both(any_of("status", ["x", "y"]), eq("other", "z"), eq("second", "q")))]:
        assert_answers(indexed, plain, docs, query, match, (1, 3, None))


@pytest.mark.parametrize("field", ["rowid", "ROWID", "oid", "_rowid_", "_ferretdb_sjson",
                                   "_ferretdb_k", "_FerretDB_K", "plain_name"])
def test_any_field_name_is_matched_by_its_value(db: Database, field: str) -> None:
    """MongoDB: a field's name is only a name: {rowid: "a"} matches the documents whose
    field rowid is "a", as {plain_name: "a"} does (names that SQLite also knows as
    columns, or that FerretDB's own SQL uses, included)."""
    o = object_ids(12)
    docs = [{"_id": oid, field: "abc"[i % 3]} for i, oid in enumerate(o)]
    indexed, plain = collections(db, docs, [(field, 1)])
    assert_answers(indexed, plain, docs, {field: "a"}, eq(field, "a"), (1, 3, None))
    assert_answers(indexed, plain, docs, {field: {"$in": ["a", "b"]}},
                   any_of(field, ["a", "b"]), (1, 3, None))


# 9. Other commands on the same path


def test_count_delete_and_update_match_as_find_does(db: Database) -> None:
    """MongoDB: count_documents, delete_many, update_many and find_one_and_update use the
    same matching as find: an array holding the value matches, every matched document is
    changed exactly once, even when the change moves it in the index."""
    docs = array_docs()
    indexed, _ = collections(db, docs, [("tags", 1)])
    assert indexed.count_documents({"tags": "a"}) == 2
    assert indexed.count_documents({"tags": {"$in": ["a", "b"]}}) == 4
    assert indexed.delete_many({"tags": "a"}).deleted_count == 2
    left = [d for d in docs if not eq("tags", "a")(d)]
    assert unordered(ids(indexed.find({}))) == unordered([d["_id"] for d in left])

    o = object_ids(30)
    docs = [{"_id": oid, "status": "abc"[i % 3], "n": 0} for i, oid in enumerate(o)]
    indexed, _ = collections(db, docs, [("status", 1)])
    assert indexed.count_documents({"status": {"$in": ["a", "b"]}}) == 20
    result = indexed.update_many({"status": "a"}, {"$set": {"status": "z"}, "$inc": {"n": 1}})
    assert (result.matched_count, result.modified_count) == (10, 10)
    result = indexed.update_many({"status": {"$in": ["b", "c", "d"]}},
                                 {"$set": {"status": "d"}, "$inc": {"n": 1}})
    assert result.matched_count == 20
    stored = {d["_id"]: (d["status"], d["n"]) for d in indexed.find({})}
    assert stored == {oid: ("zdd"[i % 3], 1) for i, oid in enumerate(o)}
    found = indexed.find_one_and_update({"status": "z"}, {"$inc": {"n": 10}},
                                        sort=[("_id", -1)])
    assert found is not None and found["_id"] == o[27]
    assert indexed.count_documents({"status": "d", "n": 1}) == 20
    assert indexed.delete_many({"status": {"$in": ["z", "q"]}}).deleted_count == 10
    assert indexed.count_documents({}) == 20
    assert sorted(indexed.distinct("status", {"status": "d"})) == ["d"]


# 10. Windows too large to read ahead, skip, batches


def test_large_limits_skip_and_batches_sorted_by_id_desc(db: Database) -> None:
    """MongoDB: sort {_id: -1} then skip s then limit n gives the documents s to s + n of
    that order, in batches or not, with a projection or not, whatever s + n is."""
    o = object_ids(1100)
    docs = [{"_id": oid, "status": "ab"[i % 2], "n": i} for i, oid in enumerate(o)]
    docs.append({"_id": "a string", "status": "a", "n": -1})
    indexed, plain = collections(db, docs, [("status", 1)])
    order = newest_first(docs, lambda d: True)
    for skip, limit in [(0, 1500), (0, 1000), (0, 1001), (995, 10), (999, 1), (1000, 1),
                        (5, 10), (1090, 20), (0, 0)]:
        got = ids(indexed.find({}).sort("_id", -1).skip(skip).limit(limit))
        assert got == order[skip:skip + limit if limit else None], (skip, limit)
    a_order = newest_first(docs, eq("status", "a"))
    for skip, limit in [(0, 1200), (540, 20), (3, 4)]:
        got = ids(indexed.find({"status": "a"}).sort("_id", -1).skip(skip).limit(limit))
        assert got == a_order[skip:skip + limit], (skip, limit)
    assert ids(indexed.find({}).sort("_id", -1).limit(50).batch_size(7)) == order[:50]
    assert ids(indexed.find({}).sort("_id", -1).limit(-3)) == order[:3]
    numbers = [d["n"] for d in indexed.find({}, {"_id": 0, "n": 1}).sort("_id", -1).limit(4)]
    assert numbers == [1099, 1098, 1097, 1096]
    assert ids(plain.find({}).sort("_id", -1).skip(995).limit(10)) == order[995:1005]

"""A batch of triggers is written together and each call gets its own outcome
(tenants/acceptance.py), against the real server: a refused row fails only its call, a
batch failing as a whole is written call by call, a key is stored only with its rows."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from event_manager.config import Settings
from tenants.acceptance import KeyTaken, Part, accept, earlier_keys, withdraw
from tenants.activity import ActivityLog
from tenants.database import now
from tests.scratch_log import with_log


def part(call: int, rows: int = 2, key: bool = True, **poison: Any) -> Part:
    """Call ``call``'s rows (QUEUED) and key ``k<call>``; ``poison`` goes into its last
    row."""
    trigger_id = str(ObjectId())
    docs = [{"_id": ObjectId(), "trigger_id": trigger_id, "status": "QUEUED",
             "params": {"call_id": f"c{call}"}} for _ in range(rows)]
    docs[-1].update(poison)
    record = {"_id": f"k{call}", "trigger_id": trigger_id, "event": "HANGUP",
              "source": "SYSTEM", "reason": None} if key else None
    return Part(docs, record)


async def stored(log: ActivityLog) -> tuple[set, set, set]:
    """Rows' call ids, the collections written besides the rows' and the keys' (none:
    a row is all that recovery needs to find it), and keys."""
    rows = await log.rows.find({}).to_list(None)
    others = set(await log.rows.database.list_collection_names()) - {
        log.rows.name, log.idempotency.name}
    keys = {k["_id"] for k in await log.idempotency.find({}).to_list(None)}
    return {r["params"]["call_id"] for r in rows}, others, keys


def test_a_row_the_database_refuses_fails_only_its_call(settings: Settings) -> None:
    """A top-level field starting with '$' is refused by MongoDB and FerretDB alike, as
    one of the insert's writeErrors."""
    async def test(log: ActivityLog) -> tuple[list, tuple]:
        parts = [part(i) for i in range(5)]
        parts[2] = part(2, **{"$bad": 1})
        await accept(log, parts)
        return [p.outcome for p in parts], await stored(log)

    outcomes, (calls, others, keys) = with_log(settings, test, label="accept")
    assert outcomes[:2] + outcomes[3:] == [None] * 4
    assert isinstance(outcomes[2], OperationFailure) and "$bad" in str(outcomes[2])
    assert calls == {"c0", "c1", "c3", "c4"}  # nothing of call 2: not its good row either
    assert others == set()
    assert keys == {"k0", "k1", "k3", "k4"}


def test_a_batch_failing_as_a_whole_is_written_call_by_call(settings: Settings) -> None:
    """PyMongo refuses a key with NUL while encoding the insert: the error names no row."""
    async def test(log: ActivityLog) -> tuple[list, tuple]:
        parts = [part(i) for i in range(4)]
        parts[1] = part(1, **{"x\x00": 1})
        await accept(log, parts)
        return [p.outcome for p in parts], await stored(log)

    outcomes, (calls, others, keys) = with_log(settings, test, label="accept")
    assert [outcomes[0], *outcomes[2:]] == [None] * 3
    assert isinstance(outcomes[1], InvalidDocument)
    assert calls == {"c0", "c2", "c3"}
    assert others == set()
    assert keys == {"k0", "k2", "k3"}


def test_a_key_stored_meanwhile_by_another_call_keeps_none_of_its_rows(
        settings: Settings) -> None:
    """Another API process took key k1 between the batch's look-up and its write."""
    async def test(log: ActivityLog) -> tuple[list, tuple]:
        await log.idempotency.insert_one({"_id": "k1", "trigger_id": "theirs",
                                          "created_at": now()})
        parts = [part(i) for i in range(3)]
        await accept(log, parts)
        return [p.outcome for p in parts], await stored(log)

    outcomes, (calls, others, keys) = with_log(settings, test, label="accept")
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], KeyTaken) and outcomes[1].first is not None
    assert outcomes[1].first["trigger_id"] == "theirs"
    assert calls == {"c0", "c2"} and others == set() and keys == {"k0", "k1", "k2"}


def test_a_row_refused_by_a_unique_index_fails_only_its_call(settings: Settings) -> None:
    async def test(log: ActivityLog) -> tuple[list, tuple]:
        await log.rows.create_index("params.call_id", unique=True)
        parts = [part(i, rows=1) for i in range(4)]
        parts[3] = part(1, rows=1)  # the same call id as call 1
        parts[3].key["_id"] = "k3"  # type: ignore[index]
        await accept(log, parts)
        return [p.outcome for p in parts], await stored(log)

    outcomes, (calls, others, keys) = with_log(settings, test, label="accept")
    assert outcomes[:3] == [None] * 3 and isinstance(outcomes[3], DuplicateKeyError)
    assert calls == {"c0", "c1", "c2"} and others == set() and keys == {"k0", "k1", "k2"}


def test_withdrawn_calls_leave_nothing_and_their_keys_start_afresh(settings: Settings) -> None:
    async def test(log: ActivityLog) -> tuple[tuple, dict, dict]:
        parts = [part(i) for i in range(3)]
        await accept(log, parts)
        found = await earlier_keys(log, ["k0", "k1", "k9"])
        await withdraw(log, parts[:2])
        return await stored(log), found, await earlier_keys(log, ["k0", "k1", "k2"])

    (calls, others, keys), before, after = with_log(settings, test, label="accept")
    assert set(before) == {"k0", "k1"} and len(before["k0"].rows) == 2
    assert calls == {"c2"} and others == set() and keys == {"k2"}
    assert set(after) == {"k2"}


def test_a_key_whose_rows_are_gone_is_forgotten(settings: Settings) -> None:
    """A key left by a call that failed before keys were written after their rows: its
    trigger is processed again, not answered "accepted" with no activities."""
    async def test(log: ActivityLog) -> tuple[dict, list]:
        await log.idempotency.insert_one({"_id": "k1", "trigger_id": str(ObjectId()),
                                          "event": "HANGUP", "source": "SYSTEM",
                                          "reason": None, "created_at": now()})
        found = await earlier_keys(log, ["k1"])
        return found, await log.idempotency.find({}).to_list(None)

    found, keys = with_log(settings, test, label="accept")
    assert found == {} and keys == []


def test_a_batch_with_nothing_to_write_writes_nothing(settings: Settings, caplog: Any) -> None:
    """A batch of replays only: no insert is tried (PyMongo refuses an empty one)."""
    async def test(log: ActivityLog) -> None:
        await accept(log, [])

    with_log(settings, test, label="accept")
    assert "failed as a whole" not in caplog.text

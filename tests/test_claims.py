"""Claims made from the row a delivery message carries (tenants.activity.claim with
``known``), against the real server: the row is not read again, and a copy that is out
of date never sends an attempt twice."""

from __future__ import annotations

import asyncio
import contextvars
import json
from datetime import timedelta
from typing import Any

from bson import ObjectId

from dispatch.runtime import _carried
from event_manager.config import Settings
from tenants.activity import KNOWN_ROW_FOR, ActivityLog, portable, restore
from tenants.database import now
from tests.scratch_log import with_log


def queued_row(**changes: Any) -> dict[str, Any]:
    created = now()
    return {"_id": ObjectId(), "trigger_id": str(ObjectId()), "event": "HANGUP",
            "source": "SYSTEM", "action_id": str(ObjectId()), "action_name": "crm",
            "status": "QUEUED", "message": "queued", "attempts": 0, "cycle_start": 0,
            "http_status": None, "request": None, "response_snippet": None,
            "unresolved_parameters": [], "params": {"caller": "+3912345", "n": 1.5},
            "occurred_at": created, "created_at": created, "updated_at": created,
            "next_attempt_at": None, **changes}


def test_a_carried_row_survives_the_message_unchanged() -> None:
    row = queued_row(next_attempt_at=now())
    carried = json.loads(json.dumps(portable(row)))  # as Dramatiq carries it
    assert restore(carried) == row


def test_a_fresh_carried_row_is_claimed_without_reading_it(settings: Settings) -> None:
    async def test(log: ActivityLog) -> tuple:
        row = queued_row()  # never written: a read would find nothing
        claimed = await log.claim(row["_id"], known=row)
        claim = await log.claims.find_one({"_id": f"{row['_id']}:1"})
        return claimed, claim

    claimed, claim = with_log(settings, test, label="claims")
    assert (claimed["status"], claimed["attempts"]) == ("SENDING", 1)
    assert claim is not None


def test_an_old_carried_row_is_read_again(settings: Settings) -> None:
    async def test(log: ActivityLog) -> Any:
        row = queued_row(updated_at=now() - KNOWN_ROW_FOR - timedelta(minutes=1))
        return await log.claim(row["_id"], known=row)  # not in the database: not ours

    assert with_log(settings, test, label="claims") is None


def test_a_copy_from_before_an_attempt_sends_nothing(settings: Settings) -> None:
    """The message's row says QUEUED, but the attempt after it was made meanwhile (by a
    copy of the message, or before a retry): its claim stops a second send."""
    async def test(log: ActivityLog) -> tuple:
        row = queued_row()
        await log.insert([row])
        first = await log.claim(row["_id"], known=row)
        again = await log.claim(row["_id"], known=row)

        async def elsewhere() -> Any:
            return await log.claim(row["_id"], known=row)

        other = asyncio.create_task(elsewhere(), context=contextvars.Context())  # another
        return first, again, await other  # delivery task: another claimant

    first, again, elsewhere = with_log(settings, test, label="claims")
    assert first is not None and first["attempts"] == 1
    assert again is not None  # its own claim, asked again (a reply lost): still its own
    assert elsewhere is None


def test_rows_a_message_carries_are_found_by_id_and_unreadable_ones_skipped() -> None:
    good = queued_row()
    known = _carried([portable(good), {"_id": "not an id"}, {"no": "id"}])
    assert known == {str(good["_id"]): good}
    assert _carried(None) == {}

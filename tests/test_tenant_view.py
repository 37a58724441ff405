"""What a worker's deliveries read of their tenant (``dispatch.view``): against the real
server, one stamp read and one view for the deliveries of a message, each part read
only when a delivery needs it; with a fake store (pure logic), reads shared, made again
after a failure, and not cancelled for others. And how a claimed row is shown SENDING
(``Deliverer._shown_sending``), with a fake view and publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bson import ObjectId

from dispatch import delivery
from dispatch.delivery import Deliverer
from dispatch.stamps import ConfigCache, ConfigStamps, Snapshot
from dispatch.view import DatabaseGates, Stopping, TenantView, Views
from event_manager.config import Settings
from tenants.database import Database, now
from tests.conftest import TenantHandle
from tests.test_config_stamps import FakeRedis


def with_views(settings: Settings, test: Callable[[Views, FakeRedis], Awaitable[Any]]) -> Any:
    """``test(views, redis)``: the worker's views on the real database, stamps read from
    a fake Redis (no stamp: every message's view is the same while it is kept)."""
    async def run() -> Any:
        redis = FakeRedis()
        db = Database(settings)
        stamps = ConfigStamps(redis, "x:")  # type: ignore[arg-type]
        try:
            return await test(Views(db, ConfigCache(stamps)), redis)
        finally:
            await db.close()

    return asyncio.run(run())


def test_the_deliveries_of_a_message_share_one_stamp_read_and_one_view(
        tenant: TenantHandle, settings: Settings) -> None:
    async def test(views: Views, redis: FakeRedis) -> tuple:
        message = views.for_message(tenant.code)
        together = await asyncio.gather(*(message.open() for _ in range(5)))
        later = await message.open()
        next_message = await views.for_message(tenant.code).open()
        return together, later, next_message, len(redis.reads)

    together, later, next_message, reads = with_views(settings, test)
    assert all(view is together[0] for view in [*together, later, next_message])
    assert reads == 2  # once per message


def test_a_message_whose_rows_are_not_ours_reads_no_settings_parameters_or_actions(
        tenant: TenantHandle, settings: Settings) -> None:
    async def test(views: Views, redis: FakeRedis) -> tuple:
        view = await views.for_message(tenant.code).open()
        claimed = [await view.claim(str(ObjectId()), None), await view.claim("nonsense", None)]
        unread = set(views.configs.held[tenant.code].parts)
        await view.action_and_values({"action_id": None, "occurred_at": now(), "params": {}})
        return claimed, unread, set(views.configs.held[tenant.code].parts)

    claimed, unread, read = with_views(settings, test)
    assert claimed == [None, None]
    assert unread == {"view"}
    assert read == {"view", ("action", None), "settings", "custom"}


def test_a_worker_told_to_stop_claims_nothing(tenant: TenantHandle, settings: Settings) -> None:
    async def test(views: Views, redis: FakeRedis) -> None:
        view = await views.for_message(tenant.code).open()
        views.gates.stopping = True
        await view.claim(str(ObjectId()), None)

    with pytest.raises(Stopping):
        with_views(settings, test)


class FakeStore:
    """A tenant's store whose reads take a moment, counted; ``failing`` reads fail once."""

    code, master = "acme", False

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.reads: list[str] = []
        self.failing = set(failing)

    async def _read(self, what: str, value: Any) -> Any:
        self.reads.append(what)
        await asyncio.sleep(0.05)
        if what in self.failing:
            self.failing.discard(what)
            raise ValueError(f"{what} could not be read")
        return value

    async def find_action(self, action_id: ObjectId | None) -> dict[str, Any]:
        return await self._read("action", {"_id": action_id, "name": "crm"})

    async def get_settings(self) -> dict[str, Any]:
        return await self._read("settings", {"timezone": "UTC"})

    async def parameter_values(self) -> list[dict[str, Any]]:
        return await self._read("custom", [{"tag": "team", "value": "support"},
                                           {"tag": "key", "value": "s3cret", "secret": True}])


def reading(store: FakeStore, test: Callable[[TenantView], Awaitable[Any]]) -> Any:
    view = TenantView(store, Snapshot(None, 0.0), DatabaseGates())  # type: ignore[arg-type]
    return asyncio.run(test(view))


ROW = {"action_id": str(ObjectId()), "occurred_at": now(), "params": {}}


def test_deliveries_asking_at_once_share_each_read() -> None:
    store = FakeStore()

    async def test(view: TenantView) -> list:
        return await asyncio.gather(*(view.action_and_values(ROW) for _ in range(5)))

    results = reading(store, test)
    assert sorted(store.reads) == ["action", "custom", "settings"]
    action, values = results[0]
    assert action["name"] == "crm" and values.by_tag["team"] == "support"
    assert values.secrets == ["s3cret"]


def test_a_failed_read_is_made_again_by_the_next_delivery() -> None:
    store = FakeStore(failing=("settings",))

    async def test(view: TenantView) -> Any:
        with pytest.raises(ValueError):
            await view.action_and_values(ROW)
        return await view.action_and_values(ROW)

    action, values = reading(store, test)
    assert action is not None and values.by_tag["team"] == "support"
    assert sorted(store.reads) == ["action", "custom", "settings", "settings"]


def test_a_cancelled_delivery_cancels_no_one_elses_read() -> None:
    store = FakeStore()

    async def test(view: TenantView) -> Any:
        first = asyncio.ensure_future(view.action_and_values(ROW))
        second = asyncio.ensure_future(view.action_and_values(ROW))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    action, _ = reading(store, test)
    assert action is not None
    assert sorted(store.reads) == ["action", "custom", "settings"]


class FakeView:
    """Records when a row's SENDING write starts and ends (it takes ``write_seconds``)."""

    code = "acme"

    def __init__(self, events: list[str], write_seconds: float = 0.1) -> None:
        self.events = events
        self.write_seconds = write_seconds

    async def mark_sending(self, row: dict[str, Any]) -> None:
        self.events.append("writing SENDING")
        await asyncio.sleep(self.write_seconds)
        self.events.append("written SENDING")


class FakePublisher:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def publish(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        self.events.append("published SENDING")


def shown_sending(attempt_seconds: float, cancel_after: float | None = None) -> list[str]:
    """What happens around an attempt of ``attempt_seconds`` (SENDING written after 0.1 s),
    the delivery cancelled after ``cancel_after`` seconds if given."""
    events: list[str] = []
    deliverer = Deliverer(views=None, egress=None, guard=None,  # type: ignore[arg-type]
                          publisher=FakePublisher(events), settings=Settings(),
                          enqueue=None)  # type: ignore[arg-type]

    async def attempt() -> None:
        async with deliverer._shown_sending(FakeView(events), {}):  # type: ignore[arg-type]
            await asyncio.sleep(attempt_seconds)
            events.append("attempt ended")
        events.append("outcome written")

    async def run() -> None:
        task = asyncio.ensure_future(attempt())
        if cancel_after is not None:
            await asyncio.sleep(cancel_after)
            task.cancel()
        await asyncio.wait({task})
        await asyncio.sleep(0.3)  # a SENDING write that was not stopped would end here

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delivery, "SENDING_AFTER_SECONDS", 0.1)
        asyncio.run(run())
    return events


def test_a_quick_attempt_is_published_sending_but_not_written_so() -> None:
    assert shown_sending(0.0) == ["published SENDING", "attempt ended", "outcome written"]


def test_a_long_attempts_outcome_is_written_after_its_sending_state() -> None:
    assert shown_sending(0.15) == ["published SENDING", "writing SENDING", "attempt ended",
                                   "written SENDING", "outcome written"]


def test_a_cancelled_delivery_stops_its_sending_write() -> None:
    assert shown_sending(1.0, cancel_after=0.15) == ["published SENDING", "writing SENDING"]


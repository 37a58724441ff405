"""The Activity Monitor: pages of delivery rows, and the live stream of them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from event_manager import metrics
from event_manager.errors import BadInput
from event_manager.zones import clock
from resolvers.context import READ
from schema.activity import Activity, ActivityFilter, ActivityPage
from schema.live import live_activity
from tenants.activity import SEARCH_SECONDS, activity_query, decode_cursor
from tenants.database import MAX_SEARCH

MAX_PAGE = 200


def check_filter(filter: ActivityFilter | None) -> None:
    if filter is None:
        return
    if filter.search is not None and len(filter.search) > MAX_SEARCH:
        raise BadInput(f"search is at most {MAX_SEARCH} characters", field="filter.search")
    if filter.since and filter.until and filter.since >= filter.until:
        raise BadInput("since must be before until", field="filter.until")


async def activity(info: strawberry.Info, filter: ActivityFilter | None = None,
                   first: int | None = 50, after: str | None = None) -> ActivityPage:
    store = await info.context.tenant_store(READ)
    first = 50 if first is None else first
    if not 1 <= first <= MAX_PAGE:
        raise BadInput(f"first must be between 1 and {MAX_PAGE}", field="first")
    check_filter(filter)
    cursor = None
    if after is not None:
        cursor = decode_cursor(after)
        if cursor is None:
            raise BadInput("after is not a cursor this API gave out", field="after")
    query = activity_query(filter)
    if filter is not None and filter.search:
        docs, next_cursor, searched_to = await store.log.search_page(query, first, cursor)
        note = None
        if searched_to is not None:
            timezone = (await store.get_settings())["timezone"]
            note = (f"searched the rows created since {clock(searched_to, timezone, date=True)} "
                    f"(a search reads for about {SEARCH_SECONDS:g} s per page); the next "
                    "page (after: nextCursor) searches older rows")
        return ActivityPage(items=[Activity.from_doc(d) for d in docs],
                            next_cursor=next_cursor, note=note)
    docs, next_cursor = await store.log.page(query, first, cursor)
    return ActivityPage(items=[Activity.from_doc(d) for d in docs], next_cursor=next_cursor)


def matches(filter: ActivityFilter | None, doc: dict[str, Any]) -> bool:
    """The live stream's filter: the same meaning as ``activity_query``, in memory."""
    if filter is None:
        return True
    created = doc["created_at"]
    search = (filter.search or "").casefold()
    return all((
        not filter.events or doc["event"] in {e.value for e in filter.events},
        not filter.statuses or doc["status"] in {s.value for s in filter.statuses},
        not filter.source or doc["source"] == filter.source.value,
        not filter.action_id or doc.get("action_id") == str(filter.action_id),
        not filter.trigger_id or doc["trigger_id"] == str(filter.trigger_id),
        not filter.since or created >= filter.since,
        not filter.until or created < filter.until,
        not search or search in (doc.get("action_name") or "").casefold()
        or search in doc["message"].casefold(),
    ))


async def activity_stream(
    info: strawberry.Info, filter: ActivityFilter | None = None
) -> AsyncGenerator[Activity, None]:
    """Every new or changed row of the caller's tenant, as it happens. Each row's
    ``Activity`` is shared by the subscriptions it reaches (``schema/live.py``); a key
    or tenant over its limit of subscriptions is refused, and one that falls too far
    behind ends its connection (``dispatch.live.Limits``). On a WebSocket, rows go to
    the operation's sink instead of being yielded (``schema.live.LiveSink``)."""
    principal = info.context.require(READ)
    store = await info.context.tenant_store(READ)
    check_filter(filter)
    sink = info.context.live
    async with info.context.hub.subscribe(store.code, principal.key_id,
                                          info.context.slow_consumer) as subscriber:
        metrics.SUBSCRIPTIONS.inc()
        try:
            while True:
                row = await subscriber.queue.get()
                if matches(filter, row.doc):
                    activity = live_activity(row)
                    if sink is None or not await sink.send(activity):
                        yield activity
        finally:
            metrics.SUBSCRIPTIONS.dec()

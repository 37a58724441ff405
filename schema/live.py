"""Live rows executed once per query shape, not once per subscription.

A published row reaches every subscriber of its tenant as one ``LiveRow``
(``dispatch/live.py``). The first subscription to yield it makes the row's ``Activity``
(``live_activity``) and, through ``LiveExecution``, the GraphQL result of its query; every
other subscription with the same query text and variables gets that same result object.
With 1,000 subscriptions of one dashboard's query, a row is executed once instead of
1,000 times, and ``event_manager/websocket.py`` encodes the shared result to JSON once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from dispatch.live import LiveRow
from schema.activity import Activity

LIVE_MEMO = "_live_memo"
"""Where a live ``Activity`` carries its row's memo."""


def live_activity(row: LiveRow) -> Activity:
    """The row's ``Activity``, made once and shared by every subscription it reaches."""
    found = row.memo.get(Activity)
    if found is None:
        found = row.memo[Activity] = Activity.from_doc(row.doc)
        object.__setattr__(found, LIVE_MEMO, row.memo)
    return found


class LiveExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event whose root is a live ``Activity`` once per operation
    (the parsed document is shared through the parser cache), variables and role; other
    operations as usual."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        memo = getattr(self.root_value, LIVE_MEMO, None)
        if memo is None:
            return super().execute_operation(serially)
        principal = getattr(self.context_value, "principal", None)
        key = (id(self.operation), repr(self.variable_values.coerced),
               getattr(principal, "role", None))
        found = memo.get(key)
        if found is None:
            result = super().execute_operation(serially)
            if self.is_awaitable(result):
                result = asyncio.ensure_future(result)
            # The operation is kept with its result: its id cannot be reused meanwhile.
            found = memo[key] = (self.operation, result)
        result = found[1]
        if isinstance(result, asyncio.Future):
            return _shared(result)
        return result


async def _shared(result: asyncio.Future[Any]) -> Any:
    return await asyncio.shield(result)

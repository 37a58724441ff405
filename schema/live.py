"""Live rows executed once per query shape, not once per subscription.

A published row reaches every subscriber of its tenant as one ``LiveRow``
(``dispatch/live.py``). The first subscription to yield it makes the row's ``Activity``
(``live_activity``) and, through ``LiveExecution``, the GraphQL result of its query; every
other subscription with the same query text and variables gets that same result object.
With 1,000 subscriptions of one dashboard's query, a row is executed once instead of
1,000 times, and ``event_manager/websocket.py`` encodes the shared result to JSON once.

On a WebSocket, a subscription also skips Strawberry's per-result work (extension hooks,
result wrapping: about 50 µs each): the handler gives its operation a ``LiveSink``, and
the resolver hands each row's result to it instead of yielding the row. A result with
errors, or a subscription without a sink, goes the usual way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass
class LiveSink:
    """Where a WebSocket operation's live results go without Strawberry's stream."""

    deliver: Callable[[Any], Awaitable[None]]
    """Sends one result's ``data`` as the operation's next message."""
    executor: StrawberryGraphQLCoreExecutionContext | None = None
    """The subscription's executor, set when it resolves the subscription field."""

    async def send(self, activity: Activity) -> bool:
        """Execute the row for this operation (once per query shape) and deliver it;
        False when it cannot go this way (no executor yet, or errors to report)."""
        if self.executor is None:
            return False
        result = self.executor.build_per_event_executor(activity).execute_operation(False)
        if self.executor.is_awaitable(result):
            result = await result
        if result.errors:
            return False
        await self.deliver(result.data)
        return True


class LiveExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event whose root is a live ``Activity`` once per operation
    (the parsed document is shared through the parser cache), variables and role; other
    operations as usual."""

    def build_resolve_info(self, *args: Any, **kwargs: Any) -> Any:
        sink = getattr(self.context_value, "live", None)
        if sink is not None and sink.executor is None:  # the subscription field's
            sink.executor = self
        return super().build_resolve_info(*args, **kwargs)

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

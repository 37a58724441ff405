"""graphql-transport-ws as the Event Manager speaks it: Strawberry's handler, plus

- a session (``event_manager/sessions.py``) for each accepted connection: access is
  checked at ``connection_init`` and again before each operation runs, and a notice
  from any API process ends the connection with a close code and reason;
- limits on connections per key and per tenant (4429) and on operations running at
  once on one connection (an ``error`` message naming the limit);
- one bounded send queue per connection (``OUTBOX`` messages), written by one task;
  while it is full, subscriptions wait and rows wait in their own bounded queues
  (``live_send_queue`` rows, shared by all subscriptions they reach). A client that
  falls that far behind (one that never reads) is closed with 4408 instead of growing
  the API's memory;
- the JSON text of a ``next`` payload made once for every subscription that shares its
  result (``schema/live.py``): 1,000 subscriptions of one dashboard query cost one
  ``json.dumps`` per row, and each message only adds its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.utils.aio import aclosing

from event_manager.sessions import SLOW_CONSUMER, TOO_MANY, Session
from schema.live import LiveSink

if TYPE_CHECKING:
    from event_manager.app import Services

log = logging.getLogger("event_manager.websocket")

OUTBOX = 256
"""Messages of one connection waiting for the socket; more ``next`` messages wait."""
CLOSE_WAIT = 10.0
"""Seconds a close frame may wait behind data a client does not read."""
REASON_BYTES = 123
"""A close reason's limit in the WebSocket protocol."""
_texts: dict[int, tuple[Any, str]] = {}
"""JSON text of recent shared results, by ``id`` (the result is kept: its id stays its)."""
_TEXTS_KEPT = 256


def short(reason: str) -> str:
    """A close reason cut to what the protocol carries (123 bytes of UTF-8)."""
    return reason.encode()[:REASON_BYTES].decode(errors="ignore")


def next_text(operation_id: str, data: Any) -> str:
    """``{"id":…,"type":"next","payload":{"data":…}}`` with ``data`` encoded once for all
    the messages that carry the same object."""
    found = _texts.get(id(data))
    if found is None or found[0] is not data:
        found = _texts[id(data)] = (data, json.dumps(data, separators=(",", ":")))
        if len(_texts) > _TEXTS_KEPT:
            del _texts[next(iter(_texts))]
    return (f'{{"id":{json.dumps(operation_id)},"type":"next",'
            f'"payload":{{"data":{found[1]}}}}}')


class LiveHandler(BaseGraphQLTransportWSHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: Session | None = None
        self.ending: asyncio.Task[None] | None = None
        self.outbox: deque[str] = deque()
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None

    @property
    def services(self) -> Services:
        return self.view.services["app"]  # type: ignore[attr-defined]

    # access -----------------------------------------------------------------------

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Strawberry's checks, then the key, the tenant and the connection limits; each
        refusal closes with its own code and reason (4403 for a key or tenant refused)."""
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            await self.websocket.close(4400, "Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(TOO_MANY, "Too many initialisation requests")
            return
        self.connection_init_received = True
        context = self.context
        context.connection_params = payload
        authorization = payload.get("Authorization") or payload.get("authorization")
        principal, error = await self.view.authenticate(authorization)  # type: ignore[attr-defined]
        if principal is None:
            await self.websocket.close(4403, str(error))
            return
        tenant = payload.get("X-Tenant") or payload.get("x-tenant")
        context.principal, context.auth_error = principal, None
        context.requested_tenant = tenant if isinstance(tenant, str) else None
        acting = context.requested_tenant if principal.role == "SYSTEM_ADMIN" else principal.tenant
        session = Session(principal, authorization, acting or None, self.end)
        sessions = self.services.sessions
        refusal = await sessions.verdict(session)
        if refusal is None and (reason := sessions.too_many(principal, session.tenant)):
            refusal = TOO_MANY, reason
        if refusal is not None:
            await self.websocket.close(*refusal)
            return
        sessions.add(session)
        self.session = session
        self.writer = asyncio.create_task(self._write(), name="websocket-writer")
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def handle_message(self, message: Message) -> None:
        if self.ending is None:  # after the end, nothing more runs
            await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.services.settings.live_subscriptions_per_connection
        if self.connection_acknowledged and message["id"] not in self.operations \
                and len(self.operations) >= limit:
            error = GraphQLError(
                f"too many operations on this connection: at most {limit} run at once "
                "(EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_CONNECTION)",
                extensions={"code": "BAD_USER_INPUT"})
            await self.send_message({"id": message["id"], "type": "error",
                                     "payload": [error.formatted]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation) -> None:
        """Strawberry's, with access checked first and a context of the operation's own
        (as an HTTP request has: its memo is not shared with the connection's others)."""
        assert self.session is not None
        refusal = await self.services.sessions.verdict(self.session)
        if refusal is not None:
            self.end_soon(*refusal)
            return
        async def deliver(data: Any) -> None:
            await operation.send_operation_message({"id": operation.id, "type": "next",
                                                    "payload": {"data": data}})

        context = dataclasses.replace(self.context, memo={}, slow_consumer=self.slow_consumer,
                                      live=LiveSink(deliver))
        try:
            result_source = await self.schema.stream(
                operation.query, variable_values=operation.variables, context_value=context,
                root_value=self.root_value, operation_name=operation.operation_name)
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:  # a syntax error closed the socket already
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    def slow_consumer(self) -> None:
        limit = self.services.settings.live_send_queue
        self.end_soon(SLOW_CONSUMER, f"slow consumer: a subscription fell {limit} rows behind "
                                     "(EVENT_MANAGER_LIVE_SEND_QUEUE)")

    def end_soon(self, code: int, reason: str) -> asyncio.Task[None]:
        """End the session in a task of its own: the operation that asks is cancelled."""
        if self.ending is None:
            self.ending = asyncio.create_task(self._end(code, short(reason)))
        return self.ending

    async def end(self, code: int, reason: str) -> None:
        await asyncio.shield(self.end_soon(code, reason))

    async def _end(self, code: int, reason: str) -> None:
        """Stop every operation, drop what waits to be sent, then close with the reason."""
        if self.session is not None:
            self.session.ended = True
            self.services.sessions.discard(self.session)
            log.info("WebSocket of key %s closed: %d %s", self.session.principal.key_id,
                     code, reason)
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        if self.writer is not None:
            self.writer.cancel()
        self.outbox.clear()
        self.drained.set()
        with contextlib.suppress(Exception):  # already gone, or not reading at all
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_WAIT)

    async def shutdown(self) -> None:
        await super().shutdown()
        if self.writer is not None:
            self.writer.cancel()
        if self.session is not None:
            self.services.sessions.discard(self.session)

    # sending ------------------------------------------------------------------------

    async def send_message(self, message: Message) -> None:
        if self.writer is None:  # before the session starts: nothing else is sent
            await super().send_message(message)
            return
        # Every message waits for room (a pong too: a client that pings and never reads
        # would otherwise grow the queue without end); the reading loop waits with it.
        while len(self.outbox) >= OUTBOX and self.ending is None:
            self.drained.clear()
            await self.drained.wait()
        if self.ending is not None:
            return
        payload = message.get("payload")
        if message["type"] == "next" and isinstance(payload, dict) and set(payload) == {"data"}:
            text = next_text(message["id"], payload["data"])
        else:
            text = json.dumps(message, separators=(",", ":"))
        self.outbox.append(text)
        self.ready.set()

    async def _write(self) -> None:
        """Send what waits, in order; a send blocks while the client does not read."""
        ws = self.websocket.ws  # type: ignore[attr-defined]
        try:
            while True:
                if not self.outbox:
                    self.ready.clear()
                    await self.ready.wait()
                    continue
                await ws.send_text(self.outbox.popleft())
                if len(self.outbox) < OUTBOX:
                    self.drained.set()
        except Exception as exc:  # the client went away: the receiving side ends the handler
            log.debug("WebSocket writer stopped: %s", exc)

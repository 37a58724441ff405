"""The ASGI application: GraphQL over HTTP and WebSocket, health and readiness."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from dispatch.live import ActivityHub
from dispatch.queue import Dispatcher
from event_manager.config import Settings, get_settings
from event_manager.errors import ApiError, Unauthenticated, Unavailable
from resolvers.context import Context
from schema import schema
from schema.errors import UNREACHABLE, contract_errors
from tenants.database import Database
from tenants.keys import ApiKeys, Principal

log = logging.getLogger("event_manager.api")


def bearer(value: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` value."""
    scheme, _, key = (value or "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


class Services:
    """The process's shared clients, opened in the lifespan and closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2,
                                       socket_timeout=2)
        # The hub's listener blocks on pub/sub reads, so it has a client without a read timeout.
        self.hub = ActivityHub(aioredis.from_url(settings.redis_url, socket_connect_timeout=2),
                               settings.live_channel_prefix)
        self.dispatcher = Dispatcher(self.redis, settings.live_channel_prefix)

    async def close(self) -> None:
        await self.hub.stop()
        await self.hub.redis.aclose()
        await self.db.close()
        await self.redis.aclose()


class EventManagerGraphQL(GraphQL):
    def __init__(self, services: dict[str, Services]) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.services = services

    async def authenticate(self, authorization: Any) -> tuple[Principal | None, ApiError | None]:
        key = bearer(authorization if isinstance(authorization, str) else None)
        if key is None:
            return None, Unauthenticated("send 'Authorization: Bearer <api key>'")
        try:
            principal = await ApiKeys(self.services["app"].db).authenticate(key)
        except UNREACHABLE:
            return None, Unavailable("the database is unavailable; try again shortly")
        if principal is None:
            return None, Unauthenticated("unknown or revoked API key")
        return principal, None

    async def process_result(self, request: Any, result: Any) -> Any:
        """Errors raised before the operation started (a syntax error found while parsing)
        bypass schema extensions; they get their contract code here."""
        if result.errors:
            result.errors = contract_errors(result.errors)
        return await super().process_result(request, result)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services = self.services["app"]
        context = Context(db=services.db, settings=services.settings, principal=None,
                          dispatcher=services.dispatcher, hub=services.hub,
                          auth_error=Unauthenticated("send 'Authorization: Bearer <api key>'"))
        if isinstance(request, Request):
            context.principal, context.auth_error = await self.authenticate(
                request.headers.get("authorization")
            )
            context.requested_tenant = request.headers.get("x-tenant")
        return context

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a WebSocket from its ``connection_init`` payload."""
        params = context.connection_params or {}
        context.principal, context.auth_error = await self.authenticate(
            params.get("Authorization") or params.get("authorization")
        )
        if context.principal is None:
            raise ConnectionRejectionError({"reason": str(context.auth_error)})
        tenant = params.get("X-Tenant") or params.get("x-tenant")
        context.requested_tenant = tenant if isinstance(tenant, str) else None


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> JSONResponse:
    """200 when MongoDB and Redis answer; 503 naming each part that does not."""
    services: Services = request.app.state.services
    failing: dict[str, str] = {}
    try:
        await services.db.ping()
    except Exception as exc:  # any failure means not ready; the reason is reported
        failing["mongodb"] = type(exc).__name__
    try:
        await services.redis.ping()
    except Exception as exc:
        failing["redis"] = type(exc).__name__
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    holder: dict[str, Services] = {}
    graphql = EventManagerGraphQL(holder)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = Services(settings)
        holder["app"] = app.state.services = services
        services.hub.start()
        try:
            await services.db.ensure_system_indexes()
        except Exception as exc:
            log.warning("MongoDB did not answer at start (%s); /readyz reports it", exc)
        try:
            yield
        finally:
            await services.close()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )

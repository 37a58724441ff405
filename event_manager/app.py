"""The ASGI application: GraphQL over HTTP and WebSocket, health and readiness.

Before GraphQL sees a request, its body (or WebSocket message) is checked here against
the limits of ``schema/limits.py`` and read as strict JSON: UTF-8, one object, no NaN,
no unpaired surrogate. A refusal is a JSON error with code BAD_USER_INPUT, status 400,
or 413 for a body over ``EVENT_MANAGER_HTTP_MAX_BODY_BYTES``. Sizes and times of the
header section and the body's pace are the connection's (``event_manager/connections.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from cross_web import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http.exceptions import NonTextMessageReceived
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from dispatch.live import ActivityHub, Limits
from dispatch.queue import Dispatcher
from dispatch.stamps import ConfigCache, ConfigStamps, Snapshot
from event_manager import console, graphiql, metrics, tracing
from event_manager.config import Settings, get_settings
from event_manager.errors import (
    ApiError,
    BadInput,
    FeatureDisabled,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from event_manager.parsers import ParserPool
from event_manager.sessions import (
    REVOKED,
    SWITCHED_OFF,
    AccessNotices,
    Session,
    Sessions,
    Verdict,
    access_channel,
    on_notice,
)
from event_manager.sizes import size_text
from event_manager.websocket import LiveHandler, short
from resolvers.context import ANYONE, SYSTEM_ADMIN, Context
from resolvers.intake import Intake
from schema import schema
from schema.errors import UNREACHABLE, contract_errors
from schema.limits import MAX_JSON_VALUES, MAX_WS_MESSAGE_CHARS
from tenants.database import Database, LayoutMismatch
from tenants.keys import API_KEYS, ApiKeys, Principal, hash_key
from tenants.registry import TENANT_CODE

log = logging.getLogger("event_manager.api")


def bearer(value: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` value."""
    scheme, _, key = (value or "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


class BodyTooLarge(BadInput):
    """Raised when an HTTP request body is larger than the limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {size_text(limit)} ({limit} bytes)")


OFFLOAD_BODY_BYTES = 1024 * 1024
"""A JSON body this large is read in a parser process (``event_manager/parsers.py``): a
14 MB one (a 10 MB Postman collection inside) took 75 ms of the event loop to read."""
DECODED: ContextVar[tuple[bytes, object] | None] = ContextVar("decoded_body", default=None)
"""The body of the request being served and its JSON, when read beforehand."""

# A surrogate can only come from a \uD800-\uDFFF escape once the body is strict UTF-8.
ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")


def request_json(data: str | bytes, what: str = "request") -> dict[str, Any]:
    """The JSON object of a request body or GET parameter (or of a WebSocket ``message``);
    raises ``BadInput`` for anything else, naming the variable that holds a bad string."""
    def no_constant(name: str) -> None:  # Python reads NaN and Infinity; JSON has neither
        raise BadInput(f"the {what} is not valid JSON: {name} is not a JSON number")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=no_constant)
    except UnicodeDecodeError as error:
        raise BadInput(f"the {what} is not UTF-8: byte {error.start} is invalid") from None
    except json.JSONDecodeError as error:
        raise BadInput(f"the {what} is not valid JSON: {error.msg} at line {error.lineno}, "
                       f"column {error.colno}") from None
    except RecursionError:
        raise BadInput(f"the {what} is not valid JSON: it is nested too deeply") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise BadInput(f"the {what} is not valid JSON: a number is too long") from None
    if isinstance(value, list) and what == "request":
        raise BadInput(f"batching is not supported: send one operation per request, not a "
                       f"JSON array of {len(value)}")
    if not isinstance(value, dict):
        kind = {str: "a string", bool: "a boolean", list: "an array",
                type(None): "null"}.get(type(value), "a number")
        raise BadInput(f"the {what} must be a JSON object, not {kind}")
    check_values(value, surrogates=may_hold_surrogates(text, decoded=isinstance(data, bytes)))
    return value


def may_hold_surrogates(text: str, *, decoded: bool) -> bool:
    """Whether a string of the JSON may hold a lone surrogate: from a ``\\uD800``-style
    escape, or, in text that was not decoded here from strict UTF-8 (which refuses them),
    as a character. Quick on large bodies: a 14 MB request was searched in 100 ms of
    the event loop; ``"\\ud" in text`` and ``isascii()`` answer most in a few."""
    if ("\\ud" in text or "\\uD" in text) and ESCAPED_SURROGATE.search(text):
        return True
    return not decoded and not text.isascii() and SURROGATE.search(text) is not None


def check_values(value: dict[str, Any], *, surrogates: bool) -> None:
    """Refuse more than ``MAX_JSON_VALUES`` values, and (if ``surrogates``) a string or key
    holding an unpaired surrogate, which no database can store: JSON allows "\\ud800"."""
    stack: list[tuple[Any, str]] = [(value, "")]
    count = 1
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list):
            count += len(item)
            if count > MAX_JSON_VALUES:
                raise BadInput(f"the request holds more than {MAX_JSON_VALUES} JSON values")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, int):
                    stack.append((child, f"{path}[{key}]"))
                    continue
                if surrogates and (found := SURROGATE.search(key)):
                    raise _surrogate(found.group(), path, in_key=True)
                stack.append((child, f"{path}.{key[:40]}" if path else key[:40]))
        elif surrogates and isinstance(item, str) and (found := SURROGATE.search(item)):
            raise _surrogate(found.group(), path)


def _surrogate(char: str, path: str, *, in_key: bool = False) -> BadInput:
    """The refusal of a lone surrogate found in the value (or a key) at ``path``. The
    message and field never quote the bad text: it cannot be encoded into the reply."""
    field = path.removeprefix("variables.") or None
    where = f"a key of {field or 'the request'}" if in_key else field or "the request"
    return BadInput(f"{where} holds an unpaired UTF-16 surrogate (\\u{ord(char):04x}); "
                    "text must be valid Unicode", field=field)


def limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``BodyTooLarge`` once the body passes ``limit`` bytes
    (a chunked body declares no length)."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_limited


def refusal(error: BadInput, status: int) -> JSONResponse:
    """A request refused before GraphQL ran, in the contract's error shape."""
    return JSONResponse({"errors": [{"message": error.message, "extensions": error.extensions}]},
                        status_code=status)


class LimitedWebSocket(ASGIWebSocketAdapter):
    """WebSocket messages read like HTTP bodies: at most ``MAX_WS_MESSAGE_CHARS``
    (else close 1009), then ``request_json`` (else close 4400 with the reason).

    Every close reason, ours or Strawberry's (which may quote a client's text, as in
    "Unknown message type: …"), is cut to what a close frame carries: a longer one made
    the server fail the close with a protocol error instead of sending it."""

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, short(reason))

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if len(text) > MAX_WS_MESSAGE_CHARS:
                    await self.close(1009, f"message longer than {MAX_WS_MESSAGE_CHARS} "
                                           "characters")
                    return
                try:
                    message = request_json(text, "message")
                except BadInput as error:
                    if ignore_parsing_errors:
                        continue
                    await self.close(4400, error.message)
                    return
                yield message
        except KeyError as error:  # a binary message
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass


class Services:
    """The process's shared clients, opened in the lifespan and closed on shutdown."""

    def __init__(self, settings: Settings,
                 verdict: Callable[[Session], Awaitable[Verdict]]) -> None:
        self.settings = settings
        self.layout_checked = False
        """Whether ``Database.check_layout`` passed (at start, or at a later /readyz)."""
        self.db = Database(settings)
        self.redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2,
                                       socket_timeout=2)
        self.sessions = Sessions(settings, verdict)  # this process's WebSockets
        self.notices = AccessNotices(self.redis, settings)
        # The hub's listener blocks on pub/sub reads, so it has a client without a read timeout.
        self.hub = ActivityHub(aioredis.from_url(settings.redis_url, socket_connect_timeout=2),
                               settings.live_channel_prefix,
                               Limits(settings.live_subscriptions_per_key,
                                      settings.live_subscriptions_per_tenant,
                                      settings.live_send_queue),
                               access_channel(settings), on_notice(self.sessions))
        self.dispatcher = Dispatcher(self.redis, settings)
        self.intake = Intake()
        self.parsers = ParserPool(settings.postman_parsers, settings.postman_parse_timeout)
        stamps = ConfigStamps.of(self.redis, settings, self.db.config_changes)
        self.configs = ConfigCache(stamps, tenants=settings.cached_tenants)
        # keys, tenants and what triggers read, kept until a change
        self.stamps = stamps
        self.db.on_change = self.changed  # each change of a tenant's configuration

    async def changed(self, name: str) -> None:
        """A tenant's configuration or registration, or the API keys, changed: stamp it
        (every process reloads what it holds), then announce it (every process re-checks
        the WebSockets it may end: a revoked key, a tenant switched off)."""
        await self.stamps.touch(name)
        await self.notices.announce(name)

    async def close(self) -> None:
        await self.hub.stop()
        await self.hub.redis.aclose()
        await self.db.close()
        await self.dispatcher.close()
        await self.redis.aclose()
        await asyncio.to_thread(self.parsers.stop)


class EventManagerGraphQL(GraphQL):
    websocket_adapter_class = LimitedWebSocket
    graphql_transport_ws_handler_class = LiveHandler

    def __init__(self, services: dict[str, Services], max_body_bytes: int,
                 origins: tuple[str, ...] = ()) -> None:
        # The contract's protocol only: the legacy graphql-ws one would bypass LiveHandler.
        # A WebSocket handshake from a page on another origin than ``origins`` is refused
        # (403): browsers do not apply CORS to WebSockets.
        super().__init__(schema, graphql_ide="graphiql", max_subscriptions_per_connection=None,
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                         allowed_origins=origins)
        self.services = services
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP as Strawberry serves it, but a body over the limit is not read, and every
        refusal of the request itself is a JSON error rather than plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        limit = self.max_body_bytes
        request = Request(scope, receive=limited(receive, limit))
        declared = request.headers.get("content-length", "")
        try:
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            await self.decode_large_body(request)
            response = await self.run(request)
        except ClientDisconnect:  # gone, or dropped for sending its body too slowly
            return
        except BodyTooLarge as error:
            response = refusal(error, 413)
        except BadInput as error:
            response = refusal(error, 400)
        except HTTPException as error:  # Strawberry's: no query, wrong content type, GET mutation
            response = refusal(BadInput(error.reason), error.status_code)
        await response(scope, receive, send)

    async def decode_large_body(self, request: Request) -> None:
        """A POST body over ``OFFLOAD_BODY_BYTES`` read as JSON in a parser process,
        for ``decode_json`` to find."""
        if request.method != "POST":
            return
        body = await request.body()
        if len(body) >= OFFLOAD_BODY_BYTES:
            parsers = self.services["app"].parsers
            DECODED.set((body, await parsers.run(request_json, body, what="request")))

    def decode_json(self, data: str | bytes) -> object:
        # A POST body arrives as bytes; GET's variables and extensions parameters as text.
        decoded = DECODED.get()
        if decoded is not None and decoded[0] is data:
            return decoded[1]
        return request_json(data, "request" if isinstance(data, bytes) else "GET parameter")

    async def authenticate(self, authorization: Any, context: Context | None = None,
                           ) -> tuple[Principal | None, ApiError | None]:
        """The caller's principal, or the error that refuses it. With ``context``, the
        stamp of the tenant the key acted in last time is read in the same round trip as
        the keys' stamp, for the request to use (``Context.prefetched``)."""
        key = bearer(authorization if isinstance(authorization, str) else None)
        if key is None:
            return None, Unauthenticated("send 'Authorization: Bearer <api key>'")
        services = self.services["app"]
        hashed = hash_key(key)
        try:  # kept per key until a key is revoked (the API_KEYS stamp changes)
            keys = await self.keys_and_tenant(hashed, context)
            principal = await keys.known(hashed, lambda: ApiKeys(services.db).authenticate(key))
        except UNREACHABLE:
            return None, Unavailable("the database is unavailable; try again shortly")
        if principal is None:
            return None, Unauthenticated("unknown or revoked API key")
        return principal, None

    async def keys_and_tenant(self, hashed: str, context: Context | None) -> Snapshot:
        """The keys' snapshot; and, when the key is known here already, its tenant's
        snapshot read with it (one MGET: ``ConfigStamps.current``) into ``context``."""
        configs = self.services["app"].configs
        known = configs.peek(API_KEYS, hashed)
        tenant = None if context is None or not isinstance(known, Principal) else (
            context.requested_tenant if known.role == SYSTEM_ADMIN else known.tenant)
        if not tenant or not TENANT_CODE.match(tenant):
            return await configs.snapshot(API_KEYS)
        keys, config = await asyncio.gather(configs.snapshot(API_KEYS),
                                            configs.snapshot(tenant))
        context.prefetched(tenant, config)  # type: ignore[union-attr]
        return keys

    async def process_result(self, request: Any, result: Any) -> Any:
        """Errors raised before the operation started (a syntax error found while parsing)
        bypass schema extensions; they get their contract code here."""
        if result.errors:
            result.errors = contract_errors(result.errors)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the package's own files (``event_manager/graphiql.py``)."""
        return graphiql.page()

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services = self.services["app"]
        context = Context(db=services.db, settings=services.settings, principal=None,
                          dispatcher=services.dispatcher, hub=services.hub,
                          intake=services.intake, configs=services.configs,
                          parsers=services.parsers,
                          auth_error=Unauthenticated("send 'Authorization: Bearer <api key>'"))
        if isinstance(request, Request):
            context.requested_tenant = request.headers.get("x-tenant")
            context.principal, context.auth_error = await self.authenticate(
                request.headers.get("authorization"), context
            )
        return context

    async def verdict(self, session: Session) -> Verdict:
        """Whether a WebSocket session may go on, checked as a new request would be: its
        key authenticated again, its tenant looked up again (both through the caches that
        a change's stamp renews). None while it may, or when the database does not answer
        (a refusal then would close every session at once)."""
        principal, error = await self.authenticate(session.authorization)
        if principal is None:
            return None if isinstance(error, Unavailable) else (REVOKED, str(error))
        if session.tenant is None:
            return None
        services = self.services["app"]
        context = Context(db=services.db, settings=services.settings, principal=principal,
                          requested_tenant=session.tenant, configs=services.configs)
        try:
            await context.tenant_store(ANYONE)
        except FeatureDisabled:
            return SWITCHED_OFF, f"the Event Manager is switched off for tenant {session.tenant!r}"
        except NotFound:
            return SWITCHED_OFF, f"there is no tenant {session.tenant[:40]!r}"
        except UNREACHABLE:
            return None
        return None

async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> JSONResponse:
    """200 when MongoDB, Redis and the broker answer; 503 naming each part that does not."""
    services: Services = request.app.state.services
    failing: dict[str, str] = {}
    try:
        await services.db.ping()
        if not services.layout_checked:  # MongoDB did not answer at start
            await services.db.check_layout()
            services.layout_checked = True
    except LayoutMismatch as exc:
        failing["tenant_databases"] = str(exc)
    except Exception as exc:  # any failure means not ready; the reason is reported
        failing["mongodb"] = type(exc).__name__
    try:
        await services.redis.ping()
    except Exception as exc:
        failing["redis"] = type(exc).__name__
    broker = services.settings.broker_url
    if broker != services.settings.redis_url:
        try:
            await reachable(broker)
        except Exception as exc:
            failing["broker"] = type(exc).__name__
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ready"})


async def reachable(url: str, timeout: float = 2.0) -> None:
    """A TCP connection to the host and port of ``url`` (a broker: redis:// or amqp://)."""
    parts = urlsplit(url)
    port = parts.port or {"amqp": 5672, "amqps": 5671, "rediss": 6380}.get(parts.scheme, 6379)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname or "127.0.0.1", port), timeout)
    writer.close()
    await writer.wait_closed()


async def metrics_page(request: Request) -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


CORS_HEADERS = ("Authorization", "Content-Type", "X-Tenant")
"""The request headers a page on an allowed origin may send (the preflight's answer)."""
CORS_MAX_AGE = 600
"""Seconds a browser may keep a preflight's answer."""


def cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    """``/graphql`` over HTTP for pages on ``origins`` (``EVENT_MANAGER_ALLOWED_ORIGINS``):
    Starlette's CORS middleware answers their preflights and marks the answers they may
    read; a preflight from any other origin is refused (400), and an answer to another
    origin carries no CORS header, so its page cannot read it. Keys travel in the
    ``Authorization`` header, never in cookies: no credentials mode is needed."""
    return CORSMiddleware(app, allow_origins=origins, allow_methods=("GET", "POST"),
                          allow_headers=CORS_HEADERS, max_age=CORS_MAX_AGE)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    holder: dict[str, Services] = {}
    graphql = EventManagerGraphQL(holder, settings.http_max_body_bytes, settings.origins)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = Services(settings, graphql.verdict)
        holder["app"] = app.state.services = services
        services.hub.start()
        try:
            services.parsers.start()
        except Exception as exc:  # the first parse starts it, or fails with its reason
            log.warning("the parser processes' fork server did not start: %s", exc)
        with contextlib.suppress(ValueError):  # already registered by an earlier app
            metrics.watch_queue(settings.redis_url, settings.broker_url, settings.queue_name)
        try:
            await services.db.ensure_system_indexes()
            services.layout_checked = True
        except LayoutMismatch as exc:
            log.error("%s", exc)
            raise
        except Exception as exc:
            log.warning("MongoDB did not answer at start (%s); /readyz reports it", exc)
        try:
            yield
        finally:
            await services.close()

    app = Starlette(
        routes=[
            Route("/graphql", cors(graphql, settings.origins),
                  methods=["GET", "POST", "OPTIONS"]),
            WebSocketRoute("/graphql", graphql),
            *graphiql.routes(),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_page),
            *console.routes(),
        ],
        lifespan=lifespan,
    )
    tracing.instrument_app(app)  # nothing unless an OTLP endpoint is configured
    return app

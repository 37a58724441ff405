"""The service's settings: one typed object, read once from ``EVENT_MANAGER_*`` variables.

Defaults work on a developer's machine: local MongoDB-compatible server and Redis on
127.0.0.1, state under ``./.state``.
"""

from __future__ import annotations

import ipaddress
import ssl
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.http.websocket_origin import normalize_allowed_origins


@dataclass(frozen=True)
class RetrySchedule:
    """Seconds to wait before each retry after the first attempt.

    ``RetrySchedule.parse("5,30,120")`` allows 4 attempts in all: the first, then
    retries 5 s, 30 s and 120 s after the previous one.
    """

    delays: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            delays = tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(f"retry schedule {text!r} must be comma-separated seconds") from None
        if any(d < 0 for d in delays):
            raise ValueError(f"retry schedule {text!r} has a negative delay")
        return cls(delays)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(self, attempt: int) -> float | None:
        """Delay before attempt ``attempt + 1``, or None when attempts are used up."""
        return self.delays[attempt - 1] if 1 <= attempt <= len(self.delays) else None


@dataclass(frozen=True)
class RenderLimits:
    """Most bytes a rendered request may take, each part on its own: with the defaults a
    body of 256 KiB of ``{{a}}`` whose ``a`` is 4,096 characters (204.8 MiB rendered) is
    refused while it renders, at 1 MiB."""

    url: int = 8 * 1024
    """The URL, its query string included."""
    header: int = 8 * 1024
    """One header, name and value."""
    headers: int = 32 * 1024
    """All headers together."""
    body: int = 1024 * 1024


def _parts(value: str) -> list[str]:
    """A comma-separated setting's items, blanks left out."""
    return [p for p in (p.strip() for p in value.split(",")) if p]


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """``("127.0.0.1", 27017)`` from ``mongodb://127.0.0.1:27017/x``; first host of a list."""
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1].split(",")[0]
    host, _, port = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
    return (host or netloc or "127.0.0.1"), int(port) if port else default_port


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENT_MANAGER_", extra="ignore")

    mongodb_url: str = Field(
        "mongodb://127.0.0.1:27017",
        description="MongoDB connection string (in production, of a replica set)",
    )
    database: str = Field(
        "event_manager", pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="name prefix for the service's databases (`<prefix>_system`, "
        "`<prefix>_tenants`), its delivery queue and its live channels",
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Dramatiq broker: `redis://…` or `amqp://…`"
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for live activity (pub/sub) and readiness, whatever the broker",
    )
    retry_schedule: str = Field(
        "5,30,120,600,3600", description="seconds between attempts, comma-separated"
    )
    outbound_allow: str = Field(
        "", description="CIDRs that outbound requests may reach although private/loopback, "
        "comma-separated (`up` sets `127.0.0.0/8`)",
    )
    outbound_proxy: str = Field(
        "", description="HTTP proxy that deliveries go out through (`http://[user:pass@]"
        "host:port`; https receivers by `CONNECT`); empty: straight. The guard still "
        "judges each destination",
    )
    outbound_no_proxy: str = Field(
        "", description="hosts that deliveries reach straight, not through the proxy, "
        "comma-separated: `example.com` (and its subdomains), addresses or CIDRs, `*`",
    )
    outbound_ca_file: str = Field(
        "", description="PEM file of CA certificates that deliveries trust besides the "
        "system's (receivers with certificates from a private CA)",
    )
    outbound_trace_context: bool = Field(
        True, description="when tracing is on (an OTLP endpoint is set), each delivery's "
        "request carries its W3C `traceparent` and `tracestate`, so that a receiver that "
        "traces joins the trigger's trace; `false` keeps them out",
    )
    allowed_origins: str = Field(
        "", description="origins (`scheme://host[:port]`) of browser pages on other sites "
        "that may call `/graphql` (CORS, preflight included) and open its WebSocket, "
        "comma-separated; `*` allows any; empty: only pages served by the API itself",
    )
    max_rendered_url_bytes: int = Field(
        RenderLimits.url, ge=256, description="largest URL (query string included) a "
        "rendered action may have; a larger one ends its delivery FAILED, not retried",
    )
    max_rendered_header_bytes: int = Field(
        RenderLimits.header, ge=256, description="largest header (name and value) a "
        "rendered action may have; a larger one ends its delivery FAILED, not retried",
    )
    max_rendered_headers_bytes: int = Field(
        RenderLimits.headers, ge=1024, description="largest size of all the headers of a "
        "rendered action together; more ends its delivery FAILED, not retried",
    )
    max_rendered_body_bytes: int = Field(
        RenderLimits.body, ge=1024, description="largest body a rendered action may have; "
        "a larger one ends its delivery FAILED, not retried (rendering stops at the limit)",
    )
    recovery_seconds: float = Field(
        60.0, gt=0, description="a delivery stuck in QUEUED, RETRYING (past its time) or "
        "in an attempt (past its timeout) this long is queued again, unless a live worker "
        "holds it (workers announce theirs in Redis as <database>:holding:<worker>)",
    )
    activity_retention_days: int = Field(30, ge=1, description="how long activity rows are kept")
    worker_in_flight: int = Field(
        1000, ge=1, description="deliveries one worker process has in flight at most "
        "(sending or awaiting the answer)",
    )
    tenant_in_flight: int = Field(
        400, ge=1, description="of those, one tenant's at most, so that the other tenants "
        "always find free slots: the tenant's next deliveries wait their turn in the process "
        "(as many again at most; beyond, they go back to the queue for a second)",
    )
    action_in_flight: int = Field(
        300, ge=1, description="of a tenant's, one action's at most, so that an endpoint "
        "that hangs or fails leaves room for the tenant's other actions (beyond, its "
        "deliveries wait their turn as the tenant's do)",
    )
    retry_in_flight: int = Field(
        500, ge=1, description="of those, retries at most; a free slot goes to a waiting "
        "first attempt before any retry",
    )
    retry_action_in_flight: int = Field(
        50, ge=1, description="of an action's, its retries at most, so that a dead "
        "endpoint's retries go a few at a time instead of in waves that take the database "
        "and CPU first attempts need (beyond, they wait their turn as the action's do)",
    )
    pause_after_failures: int = Field(
        20, ge=0, le=10_000, description="attempts of an action in a row that fail (no "
        "answer, or a 5xx) in a worker process before it pauses the action: its deliveries "
        "then wait at the broker, without being claimed or counted, while one of them "
        "probes the endpoint every 5 s, then 10, 20, up to 60 s; an answer under 500 ends "
        "the pause. 0: never pause",
    )
    tenant_databases: int = Field(
        1, ge=1, le=256, description="databases the tenants' collections are spread over, "
        "by a hash of the tenant's code: `<database>_tenants` when 1, else "
        "`<database>_tenants_0` to `_<N-1>`. On FerretDB/SQLite each is a file of its own, "
        "whose schema every connection reads again after each tenant is made; on a "
        "sharded MongoDB each has a primary shard of its own. Fixed for an installation "
        "once its first process started: another value is refused at start",
    )
    cached_tenants: int = Field(
        1_000, ge=1, le=1_000_000, description="tenants whose configuration (actions, "
        "events, settings, parameters, registration) each API and worker process keeps in "
        "memory, the least recently used dropped first: a tenant beyond it is read from "
        "the database when its next trigger or delivery comes",
    )
    retry_processes: int = Field(
        1, ge=0, le=64, description="worker processes of each `event-manager worker` that "
        "take only retries (and deliveries handed back for want of room), besides its "
        "--processes for first attempts; they run at a lower CPU priority (retry_nice), so "
        "that a dead endpoint's retries never take the CPU a first attempt needs. 0: every "
        "process takes both",
    )
    retry_nice: int = Field(
        10, ge=0, le=19, description="how much lower (nice) the retry processes run",
    )
    worker_metrics_port: int = Field(
        9191, ge=0, le=65535, description="Prometheus metrics of each worker process: the "
        "n-th process of a worker command on this port + n; 0 turns them off",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="address the worker processes' metrics listen on (0.0.0.0 "
        "in a container)",
    )
    secret_key: str = Field(
        "", description="keys that encrypt stored secrets, comma-separated: the first seals, "
        "each one opens. Required in production, the same for every process; when unset, one "
        "is generated into the state folder, which suits one machine only",
    )
    state_dir: Path = Field(
        Path(".state"), description="local state folder: server data, logs, pid files, admin key"
    )
    http_max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="an HTTP request line and headers together, in "
        "bytes; larger is answered 431 as soon as that much arrived",
    )
    http_header_timeout: float = Field(
        10.0, gt=0, description="seconds a new connection (or a request's first byte) has "
        "to finish its headers, else 408 and the connection closes",
    )
    http_body_timeout: float = Field(
        10.0, gt=0, description="seconds a request body has for its first bytes; it then "
        "gains one second per `EVENT_MANAGER_HTTP_BODY_MIN_RATE` bytes received",
    )
    http_body_min_rate: int = Field(
        16 * 1024, ge=1, description="bytes per second a request body must keep up after "
        "`EVENT_MANAGER_HTTP_BODY_TIMEOUT`, else the connection closes",
    )
    http_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="an HTTP request body, in bytes; larger is "
        "answered 413 (with a Content-Length, before it is read). A 10 MB Postman collection "
        "sent as a JSON string grows by its escapes, up to 1.48 times in the shared fixtures",
    )
    http_max_connections: int = Field(
        2048, ge=1, description="open connections (WebSockets included) above which a "
        "request is answered 503",
    )
    http_max_connections_per_client: int = Field(
        256, ge=0, description="open HTTP connections from one client address; the next is "
        "answered 503. 0: no limit (behind a proxy, whose address every client has)",
    )
    postman_parse_timeout: float = Field(
        20.0, gt=0, description="seconds a Postman collection may take to read; its process "
        "is then killed and the call refused",
    )
    postman_parsers: int = Field(
        2, ge=1, description="Postman collections read at once per API process, each in a "
        "process of its own; more calls wait their turn",
    )
    live_connections_per_key: int = Field(
        20, ge=1, description="open WebSocket connections one API key may hold, per API process "
        "(one more is closed with code 4429)",
    )
    live_connections_per_tenant: int = Field(
        200, ge=1, description="open WebSocket connections acting in one tenant, per API "
        "process (one more is closed with code 4429)",
    )
    live_subscriptions_per_connection: int = Field(
        100, ge=1, description="operations running at once on one WebSocket connection "
        "(one more is refused with BAD_USER_INPUT)",
    )
    live_subscriptions_per_key: int = Field(
        200, ge=1, description="live `activity` subscriptions of one API key, per API process "
        "(one more is refused with BAD_USER_INPUT)",
    )
    live_subscriptions_per_tenant: int = Field(
        1000, ge=1, description="live `activity` subscriptions of one tenant, per API process "
        "(one more is refused with BAD_USER_INPUT)",
    )
    live_send_queue: int = Field(
        1000, ge=1, description="rows one live subscription may have waiting to be sent; a "
        "WebSocket client that falls further behind is closed with code 4408 (slow consumer)",
    )
    log_level: str = Field("INFO", description="logging: DEBUG, INFO, WARNING or ERROR")
    log_format: str = Field(
        "console", pattern="^(console|json)$", description="logging: `console` or `json`"
    )
    access_log: bool = Field(
        False, description="logging: one INFO line per HTTP request of the API (uvicorn's "
        "access log); off by default: a PBX sends a request per call event, and the "
        "activity log and `/metrics` count them already",
    )

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        RetrySchedule.parse(value)
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _check_allow(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)
        return value

    @field_validator("outbound_proxy")
    @classmethod
    def _check_proxy(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not a proxy URL such as "
                                 "http://proxy.internal:3128")
        return value

    @field_validator("outbound_ca_file")
    @classmethod
    def _check_ca_file(cls, value: str) -> str:
        if value:
            try:
                ssl.create_default_context().load_verify_locations(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"{value!r} is not a readable PEM file of CA certificates "
                                 f"({exc})") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        normalize_allowed_origins(_parts(value))  # names the origin that is not one
        return value

    @property
    def origins(self) -> tuple[str, ...]:
        """``allowed_origins`` as browsers send them (``Origin``): lowercase, without a
        default port."""
        return tuple(sorted(normalize_allowed_origins(_parts(self.allowed_origins))))

    @property
    def retries(self) -> RetrySchedule:
        return RetrySchedule.parse(self.retry_schedule)

    @property
    def render_limits(self) -> RenderLimits:
        return RenderLimits(url=self.max_rendered_url_bytes,
                            header=self.max_rendered_header_bytes,
                            headers=self.max_rendered_headers_bytes,
                            body=self.max_rendered_body_bytes)

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = filter(None, (p.strip() for p in self.outbound_allow.split(",")))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)

    @property
    def system_database(self) -> str:
        return f"{self.database}_system"

    @property
    def tenant_database(self) -> str:
        """The tenants' database when they have one (``tenant_databases`` 1); the prefix
        of their databases' names otherwise."""
        return f"{self.database}_tenants"

    def tenant_database_of(self, code: str) -> str:
        """The database of tenant ``code``'s collections: ``bench_tenants``, or with 8
        databases ``bench_tenants_5`` (crc32 of the code, modulo 8)."""
        if self.tenant_databases == 1:
            return self.tenant_database
        return f"{self.tenant_database}_{zlib.crc32(code.encode()) % self.tenant_databases}"

    @property
    def tenant_database_names(self) -> list[str]:
        """Every database tenants' collections may be in."""
        if self.tenant_databases == 1:
            return [self.tenant_database]
        return [f"{self.tenant_database}_{n}" for n in range(self.tenant_databases)]

    @property
    def queue_name(self) -> str:
        """Deliveries of services sharing a database share a queue; others never meet."""
        return f"{self.database}.deliveries"

    @property
    def later_queue_name(self) -> str:
        """Retries, and deliveries handed back for want of room, wait in a queue of
        their own, which workers serve after ``queue_name``: a thousand retries due at
        once never stand before a new trigger's first attempt."""
        return f"{self.database}.deliveries-later"

    @property
    def live_channel_prefix(self) -> str:
        """Pub/sub channels of live activity: ``<prefix><tenant code>``."""
        return f"{self.database}:activity:"

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def env_name(field: str) -> str:
    """``EVENT_MANAGER_MONGODB_URL`` for ``mongodb_url``."""
    return f"{Settings.model_config['env_prefix']}{field.upper()}"


def environment(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable that gives it, for a child process:
    ``{"EVENT_MANAGER_MONGODB_URL": "mongodb://…", …}``."""
    return {env_name(name): str(value) for name, value in settings.model_dump().items()}


def settings_reference() -> str:
    """The README's settings table, made from ``Settings`` so that the two cannot drift.

    One row per field, for example
    ``| `EVENT_MANAGER_LOG_FORMAT` | logging: `console` or `json` | `console` |``.
    ``event-manager config --markdown`` prints it.
    """
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {meaning} | {_shown_default(field.default)} |")
    return "\n".join(rows) + "\n"


def _shown_default(value: object) -> str:
    if value == "":
        return "empty"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"

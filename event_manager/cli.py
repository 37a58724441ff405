"""The ``event-manager`` command.

Every command exits non-zero with a one-line reason on standard error when it cannot
do its job, never with a bare traceback.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from event_manager.config import Settings, get_settings
from event_manager.errors import ApiError, EventManagerError, ServiceError
from event_manager.wording import counted

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Event Manager: call events become HTTP requests.")
services_app = typer.Typer(no_args_is_help=True, help="Local MongoDB-compatible server and Redis.")
app.add_typer(services_app, name="services")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    typer.echo(f"event-manager: {message}", err=True)
    return typer.Exit(1)


def one_line_errors(command: F) -> F:
    """Turn expected failures into a one-line reason and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = "EVENT_MANAGER_" + str(first["loc"][0]).upper() if first["loc"] else "setting"
            raise fail(f"bad setting {name}: {first['msg']}") from None
        except (ServiceError, ApiError) as exc:
            raise fail(str(exc)) from None
        except PyMongoError as exc:
            raise fail(f"MongoDB did not answer ({type(exc).__name__}); "
                       "is it running? try 'event-manager services start'") from None
        except EventManagerError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def settings() -> Settings:
    return get_settings()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"event-manager {version('event-manager')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                               is_eager=True, help="Print the version.")] = False,
) -> None:
    """Event Manager: call events become HTTP requests."""


@services_app.command("start")
@one_line_errors
def services_start() -> None:
    """Install what is missing, start FerretDB and Redis on 127.0.0.1 (idempotent)."""
    from event_manager import services

    services.start(settings())


@services_app.command("stop")
@one_line_errors
def services_stop() -> None:
    """Stop the servers that 'services start' started."""
    from event_manager import services

    services.stop(settings())


@services_app.command("status")
@one_line_errors
def services_status() -> None:
    """Say whether each local server is up; exit 1 when one is down."""
    from event_manager import services

    if not services.status(settings()):
        raise typer.Exit(1)


@app.command()
@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Serve the API: GraphQL over HTTP and WebSocket on /graphql."""
    import uvicorn

    from event_manager import logs
    from event_manager.app import create_app
    from event_manager.connections import HttpLimits, limited_http_protocol

    config = settings()
    logs.configure(config.log_level, config.log_format)
    uvicorn.run(create_app(config), host=host, port=port, log_config=None,
                log_level=config.log_level.lower(), access_log=config.access_log,
                ws="websockets-sansio", lifespan="on",
                http=limited_http_protocol(HttpLimits.of(config)),
                limit_concurrency=config.http_max_connections)


@app.command()
@one_line_errors
def worker(
    processes: Annotated[int, typer.Option(help="Processes for first attempts.", min=1)] = 1,
    threads: Annotated[int, typer.Option(help="Threads per process.", min=1)] = 4,
    retry_processes: Annotated[int | None, typer.Option(
        help="Processes for retries only, at a lower CPU priority (default: the "
             "retry_processes setting, 1); 0: every process takes both.", min=0,
        show_default=False)] = None,
) -> None:
    """Run the delivery worker (Dramatiq), after checking that the broker answers."""
    from dispatch.roles import LAYOUT, Layout

    config = settings()
    check_broker(config.broker_url)
    asyncio.run(check_layout(config))
    layout = Layout(processes, config.retry_processes if retry_processes is None
                    else retry_processes)
    os.environ[LAYOUT] = layout.encode()
    os.execv(sys.executable, [
        sys.executable, "-m", "dramatiq", "dispatch.actors",
        "--processes", str(layout.first + layout.retries), "--threads", str(threads),
        "--queues", config.queue_name, config.later_queue_name,  # narrowed by dispatch.roles
    ])


async def check_layout(config: Settings) -> None:
    """Refuse to start with another ``EVENT_MANAGER_TENANT_DATABASES`` than the
    installation's (``Database.check_layout``); a MongoDB that does not answer yet is
    left to the worker, which waits for it."""
    from tenants.database import Database, LayoutMismatch

    db = Database(config)
    try:
        await db.check_layout()
    except LayoutMismatch as exc:
        raise ServiceError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - not this check's to report
        typer.echo(f"event-manager: the tenants' databases were not checked: MongoDB did "
                   f"not answer ({type(exc).__name__})", err=True)
    finally:
        await db.close()


def check_broker(url: str) -> None:
    """A one-line error now rather than Dramatiq retrying a connection for ever (its
    consumers retry an unreachable RabbitMQ every 3 s and the worker never exits). The
    URL is shown with its password hidden."""
    if url.startswith(("amqp://", "amqps://")):
        check_rabbitmq(url)
        return
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        raise ServiceError(f"the broker at {hide_url_password(url)} did not answer: "
                           f"{exc}") from None


def check_rabbitmq(url: str) -> None:
    """Open and close one AMQP connection: the server answers and takes the credentials."""
    import pika
    from pika.exceptions import AMQPError

    try:
        parameters = pika.URLParameters(url)
    except ValueError as exc:
        raise ServiceError(f"bad setting EVENT_MANAGER_BROKER_URL: {exc}") from None
    parameters.connection_attempts, parameters.socket_timeout = 1, 5
    try:
        pika.BlockingConnection(parameters).close()
    except (AMQPError, OSError) as exc:
        # pika's exceptions say what failed only in their repr, e.g. "AMQPConnectionError:
        # (AMQPConnectorSocketConnectError: ConnectionRefusedError(111, ...),)".
        raise ServiceError(f"the broker at {hide_url_password(url)} did not accept a "
                           f"connection: {exc!r}") from None


@app.command("create-key")
@one_line_errors
def create_key(
    role: Annotated[str, typer.Option(help="SYSTEM_ADMIN, TENANT_ADMIN, PBX or VIEWER.")],
    label: Annotated[str, typer.Option(help="What the key is for.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant code (not for SYSTEM_ADMIN).")] = None,
) -> None:
    """Create an API key; the key is the last line of standard output."""
    key = asyncio.run(_create_key(settings(), role.upper(), label, tenant))
    typer.echo(f"Created a {role.upper()} key{f' for tenant {tenant}' if tenant else ''}. "
               "It is shown once; keep it safe:")
    typer.echo(key)


async def _create_key(config: Settings, role: str, label: str, tenant: str | None) -> str:
    from tenants.audit import CLI_ACTOR, AuditLog, changes
    from tenants.database import Database
    from tenants.keys import ROLES, ApiKeys
    from tenants.registry import TenantRegistry

    if role not in ROLES:
        raise ServiceError(f"--role must be one of {', '.join(ROLES)}")
    if (role == "SYSTEM_ADMIN") == (tenant is not None):
        raise ServiceError("a SYSTEM_ADMIN key takes no --tenant; every other role needs one")
    db = Database(config)
    try:
        await db.ensure_system_indexes()
        if tenant is not None:
            await TenantRegistry(db).get(tenant)
        key, doc = await ApiKeys(db).create(role, label, tenant)
        await AuditLog.of(db, tenant).record(
            "createApiKey", {"kind": "apiKey", "id": str(doc["_id"]), "name": doc["label"]},
            CLI_ACTOR, changes(None, doc))
        return key
    finally:
        await db.close()


@app.command("rotate-secrets")
@one_line_errors
def rotate_secrets() -> None:
    """Seal every stored secret again with the first key of EVENT_MANAGER_SECRET_KEY
    (and seal any stored before sealing existed). Run it after putting a new key first."""
    counts = asyncio.run(_rotate_secrets(settings()))
    for code, count in counts.items():
        typer.echo(f"{code}: {counted(count, 'document')} resealed")
    typer.echo(f"Done: {counted(sum(counts.values()), 'document')} in "
               f"{counted(len(counts), 'tenant')}.")


async def _rotate_secrets(config: Settings) -> dict[str, int]:
    from tenants.database import Database
    from tenants.registry import TenantRegistry
    from tenants.store import TenantStore

    db = Database(config)
    try:
        return {t["code"]: await TenantStore(db, t).reseal()
                for t in await TenantRegistry(db).list()}
    finally:
        await db.close()


@app.command("recount-stats")
@one_line_errors
def recount_stats(
    tenant: Annotated[str | None, typer.Option(help="Tenant code (default: every tenant).")]
    = None,
) -> None:
    """Count the dashboards' counters (activityStats) again from the activity rows: after
    an upgrade from a version without them, or to repair counts a stopped process lost."""
    counts = asyncio.run(_recount_stats(settings(), tenant))
    typer.echo(f"Done: {counted(sum(counts.values()), 'row')} counted in "
               f"{counted(len(counts), 'tenant')}.")


async def _recount_stats(config: Settings, code: str | None) -> dict[str, int]:
    import time

    from tenants.database import Database
    from tenants.registry import TenantRegistry
    from tenants.stats import recount
    from tenants.store import TenantStore

    db = Database(config)
    try:
        registry = TenantRegistry(db)
        tenants = [await registry.get(code)] if code is not None else await registry.list()
        counts = {}
        for tenant in tenants:
            store = TenantStore(db, tenant)
            started = time.monotonic()

            def progress(rows: int, code: str = store.code, started: float = started) -> None:
                typer.echo(f"{code}: {counted(rows, 'row')} counted "
                           f"({time.monotonic() - started:.1f} s)", err=True)

            counts[store.code] = await recount(store.log.rows, store.stats, progress)
            typer.echo(f"{store.code}: {counted(counts[store.code], 'row')} counted in "
                       f"{time.monotonic() - started:.1f} s")
        return counts
    finally:
        await db.close()


@app.command("schema")
def print_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from schema import schema

    typer.echo(schema.as_str())


@app.command()
@one_line_errors
def up(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Everything on one machine, to try it out: services, API and worker. Ctrl-C stops it."""
    os.environ.setdefault("EVENT_MANAGER_OUTBOUND_ALLOW", "127.0.0.0/8")
    get_settings.cache_clear()
    config = settings()
    from event_manager import services

    started = services.start(config)
    try:
        key = asyncio.run(_admin_key(config))
        typer.echo(
            f"\nEvent Manager is up.\n"
            f"  Console:   http://{host}:{port}/\n"
            f"  GraphiQL:  http://{host}:{port}/graphql\n"
            f"  Admin key: {key}\n"
            f"  (kept in {config.state_path / 'admin.key'}; send it as "
            f"'Authorization: Bearer <key>')\n"
            f"  Ctrl-C stops the API and the servers this command started.\n"
        )
        sys.stdout.flush()
        # A session of its own: Ctrl-C reaches the API only, and the worker gets exactly
        # one SIGTERM from here (a second signal makes Dramatiq kill its workers at once).
        worker_process = subprocess.Popen([sys.executable, "-m", "event_manager", "worker"],
                                          start_new_session=True)
        try:
            serve(host=host, port=port)
        finally:
            worker_process.terminate()
            try:
                worker_process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker_process.kill()
    finally:
        for service in started:
            service.stop(typer.echo)


async def _admin_key(config: Settings) -> str:
    """The local SYSTEM_ADMIN key of ``up``: made once, kept in the state folder."""
    from tenants.database import Database
    from tenants.keys import ApiKeys

    path = config.state_path / "admin.key"
    db = Database(config)
    try:
        await db.ensure_system_indexes()
        keys = ApiKeys(db)
        if path.exists():
            stored = path.read_text().strip()
            if await keys.authenticate(stored) is not None:
                return stored
        key, _ = await keys.create("SYSTEM_ADMIN", "event-manager up", None)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
    finally:
        await db.close()


@app.command("config")
@one_line_errors
def show_config(
    markdown: Annotated[bool, typer.Option(
        "--markdown", help="Print the README's settings table (every setting and its default).",
    )] = False,
) -> None:
    """Print the effective settings, secrets hidden, and where each value came from."""
    from event_manager.config import env_name, settings_reference

    if markdown:
        typer.echo(settings_reference(), nl=False)
        return
    config = settings()
    from_environment = {name.upper() for name in os.environ}
    lines = [(f"{env_name(field)}={shown_setting(field, getattr(config, field))}",
              "environment" if env_name(field) in from_environment else "default")
             for field in type(config).model_fields]
    width = min(max(len(line) for line, _ in lines), 60)
    for line, source in lines:
        typer.echo(f"{line.ljust(width)}  # {source}")


SECRET_WORDS = ("secret", "pass", "token", "key")
HIDDEN = "********"


def shown_setting(field: str, value: object) -> str:
    """A setting's value as ``config`` prints it: secret settings hidden whole, passwords
    inside URLs hidden (``redis://:********@redis:6379/0``)."""
    text = str(value)
    if any(word in field for word in SECRET_WORDS):
        return HIDDEN if text else ""
    return hide_url_password(text)


def hide_url_password(text: str) -> str:
    """``amqp://user:pw@host/`` → ``amqp://user:********@host/``; ``?password=pw`` too."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    before_query, question, query = rest.partition("?")
    userinfo, at, hosts = before_query.rpartition("@")
    if at and ":" in userinfo:
        before_query = f"{userinfo.split(':', 1)[0]}:{HIDDEN}@{hosts}"
    pairs = [part.partition("=") for part in query.split("&")] if question else []
    query = "&".join(
        f"{key}{eq}{HIDDEN if eq and any(w in key.lower() for w in SECRET_WORDS) else value}"
        for key, eq, value in pairs
    )
    return f"{scheme}{sep}{before_query}{question}{query}"

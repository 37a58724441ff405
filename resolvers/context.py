"""What a resolver sees of the request: who calls, in which tenant, and per-request memos.

The caller's key is resolved once per request (once per WebSocket connection). Access
is checked by asking for a store: ``await ctx.tenant_store(WRITE)`` returns the
caller's tenant store or raises the contract's error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dispatch.stamps import ConfigCache, Snapshot
from event_manager.config import Settings
from event_manager.errors import ApiError, BadInput, FeatureDisabled, Forbidden, Unauthenticated
from tenants.database import Database
from tenants.keys import Principal
from tenants.registry import TENANT_CODE, TenantRegistry
from tenants.store import TenantStore

if TYPE_CHECKING:
    from dispatch.live import ActivityHub
    from dispatch.queue import Dispatcher
    from event_manager.parsers import ParserPool
    from resolvers.intake import Intake
    from schema.live import LiveSink

SYSTEM_ADMIN = "SYSTEM_ADMIN"
TENANT_ADMIN = "TENANT_ADMIN"
PBX = "PBX"
VIEWER = "VIEWER"

ANYONE = frozenset({SYSTEM_ADMIN, TENANT_ADMIN, PBX, VIEWER})
READ = frozenset({SYSTEM_ADMIN, TENANT_ADMIN, VIEWER})
WRITE = frozenset({SYSTEM_ADMIN, TENANT_ADMIN})
TRIGGER = frozenset({SYSTEM_ADMIN, TENANT_ADMIN, PBX})
SYSTEM = frozenset({SYSTEM_ADMIN})


@dataclass
class Context:
    """Made once per HTTP request, or once per WebSocket connection.

    Not frozen: on a WebSocket the key arrives after the connection is made, in the
    ``connection_init`` payload, which Strawberry stores as ``connection_params``.
    """

    db: Database
    settings: Settings
    principal: Principal | None
    auth_error: ApiError | None = None
    requested_tenant: str | None = None
    """The X-Tenant header: the tenant a SYSTEM_ADMIN key acts in."""
    dispatcher: Dispatcher | None = None
    hub: ActivityHub | None = None
    intake: Intake | None = None
    """The process's batches of triggerEvent calls."""
    configs: ConfigCache = field(default_factory=lambda: ConfigCache(None))
    """Tenants' events, settings and action names, kept while their config stamp stays
    (without stamps, read for each batch)."""
    parsers: ParserPool | None = None
    """Child processes that read Postman collections (without one: read in place)."""
    memo: dict[str, Any] = field(default_factory=dict)
    connection_params: dict[str, Any] | None = None
    slow_consumer: Callable[[], None] | None = None
    """On a WebSocket: closes it with 4408, for a live subscription that fell too far
    behind (``event_manager/websocket.py``)."""
    live: LiveSink | None = None
    """On a WebSocket: where the operation's live rows are sent (``schema/live.py``)."""

    def require(self, roles: frozenset[str]) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated("an API key is required")
        if self.principal.role not in roles:
            raise Forbidden(f"a {self.principal.role} key may not do this")
        return self.principal

    @property
    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.db)

    async def tenant_store(self, roles: frozenset[str]) -> TenantStore:
        """The store of the tenant the caller acts in, checked for role and enablement."""
        principal = self.require(roles)
        if "store" not in self.memo:
            code = principal.tenant
            if principal.role == SYSTEM_ADMIN:
                code = self.requested_tenant
                if not code:
                    raise BadInput(
                        "a SYSTEM_ADMIN key acts inside a tenant through the X-Tenant header",
                        field="X-Tenant",
                    )
            store = await self._store(code or "")
            if not store.tenant["event_manager_enabled"]:
                raise FeatureDisabled(f"the Event Manager is not enabled for tenant {code!r}")
            self.memo["store"] = store
        return self.memo["store"]

    async def _store(self, code: str) -> TenantStore:
        """The tenant's store, made from its registration and kept while its config stamp
        stays (set_enabled and create stamp it); an unknown code is looked up each time."""
        async def load() -> TenantStore:
            return TenantStore(self.db, await self.registry.get(code))  # or NotFound

        if not TENANT_CODE.match(code):
            return await load()
        return await (await self.config(code)).part("store", load)

    async def config(self, code: str) -> Snapshot:
        """The tenant's config snapshot, its stamp read once per request: after the
        request arrived, so it holds every change acknowledged before the call was sent
        (``dispatch.stamps``). ``prefetched`` may hold it already."""
        held = self.memo.setdefault("configs", {})
        if code not in held:
            held[code] = await self.configs.snapshot(code)
        return held[code]

    def prefetched(self, code: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the tenant's for this request (its stamp read for it)."""
        self.memo.setdefault("configs", {})[code] = snapshot

    async def memoized(self, name: str, load: Any) -> Any:
        """``load()``'s result, computed once per request under ``name``."""
        if name not in self.memo:
            self.memo[name] = await load()
        return self.memo[name]

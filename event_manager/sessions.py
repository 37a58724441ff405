"""The WebSocket sessions of one API process: whose key each one runs on, in which tenant,
how many each key and tenant holds, and ending them when access ends.

Access can end in another process: a key is revoked, or a tenant switched off, through
any API process (or the command line). Every such change is announced on Redis
(``<database>:access``, see ``AccessNotices``) and each API process re-checks the
sessions it holds that the change concerns: the key is authenticated again and the
tenant looked up again, as a new request would be. A session that fails is closed with
a code and a reason a client can show:

    4401  the API key is unknown or revoked       "the API key was revoked"
    4403  the tenant is switched off or gone      "the Event Manager is switched off for
                                                   tenant 'acme'"
    4408  the client does not read what is sent   "slow consumer: a subscription fell 1000
                                                   rows behind (EVENT_MANAGER_LIVE_SEND_QUEUE)"
    4429  one connection too many for the key or  "too many connections: this API key holds
          tenant                                   20 already (EVENT_MANAGER_LIVE_...)"

A notice can be lost (Redis restarts): each operation on a session checks access again
before it runs, and when the listener reconnects every session is re-checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from event_manager.config import Settings
from tenants.keys import API_KEYS, Principal

log = logging.getLogger("event_manager.sessions")

REVOKED = 4401
SWITCHED_OFF = 4403
SLOW_CONSUMER = 4408
TOO_MANY = 4429

EVERYONE = "*"
"""The name of a re-check of every session (after the listener reconnected)."""

Verdict = tuple[int, str] | None
"""Why a session must end (close code, reason), or None while access holds."""


@dataclass(eq=False)
class Session:
    """One accepted WebSocket connection."""

    principal: Principal
    authorization: str
    """What the connection authenticated with, to authenticate it again."""
    tenant: str | None
    """The tenant it acts in: the key's, or a SYSTEM_ADMIN key's X-Tenant (None: none)."""
    end: Callable[[int, str], Awaitable[None]]
    """Closes the connection with a code and reason; nothing more runs on it."""
    ended: bool = False


@dataclass
class Sessions:
    settings: Settings
    verdict: Callable[[Session], Awaitable[Verdict]]
    """Authenticates a session again and checks its tenant, as a new request would be."""
    open: set[Session] = field(default_factory=set)

    def too_many(self, principal: Principal, tenant: str | None) -> str | None:
        """Why one more connection of this key (acting in ``tenant``) is refused, or None."""
        limit = self.settings.live_connections_per_key
        if sum(1 for s in self.open if s.principal.key_id == principal.key_id) >= limit:
            return (f"too many connections: this API key holds {limit} already "
                    "(EVENT_MANAGER_LIVE_CONNECTIONS_PER_KEY)")
        limit = self.settings.live_connections_per_tenant
        if tenant and sum(1 for s in self.open if s.tenant == tenant) >= limit:
            return (f"too many connections: tenant {tenant!r} holds {limit} already "
                    "(EVENT_MANAGER_LIVE_CONNECTIONS_PER_TENANT)")
        return None

    def add(self, session: Session) -> None:
        self.open.add(session)

    def discard(self, session: Session) -> None:
        self.open.discard(session)

    def concerned(self, name: str) -> list[Session]:
        """The sessions a change of ``name`` (a tenant code, ``API_KEYS`` or ``EVERYONE``)
        may end."""
        if name in (API_KEYS, EVERYONE):
            return list(self.open)
        return [s for s in self.open if s.tenant == name]

    async def recheck(self, name: str) -> int:
        """Re-check the sessions concerned by a change of ``name``; how many were ended."""
        sessions = self.concerned(name)
        verdicts = await asyncio.gather(*(self.verdict(s) for s in sessions),
                                        return_exceptions=True)
        ends = []
        for session, verdict in zip(sessions, verdicts, strict=True):
            if isinstance(verdict, BaseException):
                log.warning("could not re-check a session of key %s: %s",
                            session.principal.key_id, verdict)
            elif verdict is not None and not session.ended:
                ends.append(session.end(*verdict))
        # At once: an end waits for its close frame to be sent (up to 10 s to a client that
        # does not read), which must not hold back the others' ends.
        await asyncio.gather(*ends)
        return len(ends)


class AccessNotices:
    """Announces, on one Redis channel, the changes that may end sessions: ``#api-keys``
    after a revocation, a tenant's code after a change to its registration. Best effort:
    a lost notice leaves each session's next operation to find the change."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.channel = access_channel(settings)

    async def announce(self, name: str) -> None:
        try:
            await self.redis.publish(self.channel, name)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("access change of %s not announced (%s); sessions see it at their "
                        "next operation", name, exc)


def access_channel(settings: Settings) -> str:
    return f"{settings.database}:access"


def on_notice(sessions: Sessions) -> Callable[[str], None]:
    """The listener's callback: each notice re-checks its sessions in a task of its own."""
    tasks: set[asyncio.Task[int]] = set()

    def notice(name: str) -> None:
        task = asyncio.create_task(sessions.recheck(name))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    return notice


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("re-checking sessions failed", exc_info=task.exception())

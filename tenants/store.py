"""The tenant-scoped store: every read and write of a tenant's data goes through here.

A ``TenantStore`` is made for one tenant and can only name that tenant's collections,
so a query that forgets the tenant cannot be written; an id of another tenant's
document is simply not found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument

from event_manager.errors import NotFound
from tenants.activity import ActivityLog
from tenants.audit import AuditLog
from tenants.calls import CallQueues
from tenants.catalog import EVENT_TYPES
from tenants.database import Database, contains, now, object_id, unique
from tenants.health import HealthLog
from tenants.stats import TenantStats

AUTH_SECRETS = ("api_key_value", "password", "token")
"""The authorization fields stored sealed (see ``tenants/vault.py``)."""


class TenantStore:
    """Secrets are sealed here on the way in and opened on the way out: every caller
    sees plain values (and masks them for output); the database only holds sealed ones."""

    def __init__(self, db: Database, tenant: dict[str, Any]) -> None:
        self.vault = db.vault
        self.db_changed = db.changed
        self.tenant = tenant
        self.code: str = tenant["code"]
        self.master: bool = tenant["master"]
        self.events = db.collection(self.code, "events")
        self.settings = db.collection(self.code, "settings")
        self.actions = db.collection(self.code, "actions")
        self.parameters = db.collection(self.code, "parameters")
        self.stats = TenantStats(db.collection(self.code, "stats"), db.stats, self.code)
        """Counters of the rows that ended, for dashboards (``tenants.stats``)."""
        self.log = ActivityLog(db.collection(self.code, "activity"),
                               db.collection(self.code, "idempotency"),
                               db.collection(self.code, "claims"), self.stats)
        self.calls = CallQueues(db.collection(self.code, "calls"))
        """The queues of actions whose deliveries go in per-call order (``dispatch.order``)."""
        self.health = HealthLog(db.collection(self.code, "health"))
        self.audit = AuditLog(db.collection(self.code, "audit"))
        """Who changed what, written by the API after each change (``tenants.audit``)."""

    async def changed(self) -> None:
        """Call after a write to what a delivery reads (actions, settings, parameters,
        events): workers holding the tenant's configuration load it afresh."""
        await self.db_changed(self.code)

    # settings ---------------------------------------------------------------

    async def get_settings(self) -> dict[str, Any]:
        doc = await self.settings.find_one({"_id": "settings"})
        return doc or {"actions_enabled": False, "timezone": "UTC"}

    async def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        if changes:
            await self.settings.update_one({"_id": "settings"}, {"$set": changes}, upsert=True)
            await self.changed()
        return await self.get_settings()

    # events -----------------------------------------------------------------

    async def list_events(self) -> list[dict[str, Any]]:
        """The five events in the manual's order."""
        found = {d["_id"]: d for d in await self.events.find({}).to_list(None)}
        return [found.get(t, {"_id": t, "active": False, "action_ids": []}) for t in EVENT_TYPES]

    async def update_event(self, event_type: str, changes: dict[str, Any]) -> None:
        if changes:
            await self.events.update_one({"_id": event_type}, {"$set": changes}, upsert=True)
            await self.changed()

    # actions ----------------------------------------------------------------

    async def list_actions(self, search: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if search:
            pattern = contains(search)
            query = {"$or": [{"name": pattern}, {"description": pattern}, {"url": pattern}]}
        docs = await self.actions.find(query).sort("name_key", ASCENDING).to_list(None)
        return [self._open_action(d) for d in docs]

    async def find_action(self, oid: ObjectId | None) -> dict[str, Any] | None:
        doc = await self.actions.find_one({"_id": oid}) if oid else None
        return self._open_action(doc) if doc else None

    async def get_action(self, action_id: str) -> dict[str, Any]:
        doc = await self.find_action(object_id(action_id))
        if doc is None:
            raise NotFound(f"no action with id {action_id[:40]!r}", field="id")
        return doc

    async def existing_action_ids(self, ids: list[str]) -> set[str]:
        oids = [oid for oid in map(object_id, ids) if oid is not None]
        found = await self.actions.find({"_id": {"$in": oids}}, {"_id": 1}).to_list(None)
        return {str(d["_id"]) for d in found}

    async def insert_action(self, doc: dict[str, Any]) -> dict[str, Any]:
        created = now()
        doc = {**doc, "_id": ObjectId(), "created_at": created, "updated_at": created}
        with unique(f"an action named {doc['name']!r} exists", "input.name"):
            await self.actions.insert_one(self._seal_action(doc))
        await self.changed()
        return self._open_action(doc)

    async def replace_action(self, action_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        current = await self.get_action(action_id)
        fields = self._seal_action({**doc, "updated_at": now()})
        with unique(f"an action named {doc['name']!r} exists", "input.name"):
            updated = await self.actions.find_one_and_update(
                {"_id": current["_id"]}, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        if updated is None:
            raise NotFound(f"no action with id {action_id[:40]!r}", field="id")
        await self.changed()
        await self.health.unpause(current["_id"])
        return self._open_action(updated)

    async def restore_action(self, doc: dict[str, Any]) -> None:
        """Put back a whole action as it was read (an undo)."""
        await self.actions.replace_one({"_id": doc["_id"]}, self._seal_action(doc))
        await self.changed()

    def _seal_action(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._auth_with(doc, self.vault.seal)

    def _open_action(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._auth_with(doc, self.vault.open)

    @staticmethod
    def _auth_with(doc: dict[str, Any], change: Any) -> dict[str, Any]:
        out = dict(doc)
        if isinstance(doc.get("auth"), dict):
            out["auth"] = {k: change(v) if k in AUTH_SECRETS else v
                           for k, v in doc["auth"].items()}
        if "signing_secret" in doc:
            out["signing_secret"] = change(doc["signing_secret"])
        return out

    async def delete_action(self, action_id: str) -> None:
        """Detach the action from every event first, so no event points at a deleted action."""
        doc = await self.get_action(action_id)
        await self.events.update_many({}, {"$pull": {"action_ids": str(doc["_id"])}})
        await self.actions.delete_one({"_id": doc["_id"]})
        await self.changed()
        await self.health.forget(doc["_id"])

    async def set_action_enabled(self, action_id: str, enabled: bool,
                                 reason: str) -> dict[str, Any]:
        """Turn the action on (its failure streak forgotten) or off by hand with
        ``reason``; an action disabled already keeps its first reason."""
        doc = await self.get_action(action_id)
        if enabled:
            await self.actions.update_one({"_id": doc["_id"]}, {"$unset": {"disabled": ""}})
            await self.health.reset(doc["_id"])
            await self.changed()
        else:
            await self.disable_action(doc["_id"], reason, now())
        return await self.get_action(action_id)

    async def disable_action(self, oid: ObjectId | None, reason: str, at: datetime) -> bool:
        """Disable the action unless it is disabled already, and stamp the change (every
        API process sees it at its next trigger): whether this call disabled it."""
        changed = await self.actions.update_one(
            {"_id": oid, "disabled": None},
            {"$set": {"disabled": {"at": at, "reason": reason}}})
        if changed.modified_count:
            await self.changed()
        return bool(changed.modified_count)

    async def events_by_action(self) -> dict[str, list[str]]:
        """Action id → the event types it is attached to, in the manual's order."""
        attached: dict[str, list[str]] = {}
        for event in await self.list_events():
            for action_id in event["action_ids"]:
                attached.setdefault(action_id, []).append(event["_id"])
        return attached

    # parameters -------------------------------------------------------------

    async def list_parameters(self, search: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if search:
            pattern = contains(search)
            # A secret's value is never matched: a search must not reveal it.
            query = {"$or": [{"tag": pattern}, {"value": pattern, "secret": False}]}
        docs = await self.parameters.find(query).sort("tag_key", ASCENDING).to_list(None)
        return [self._parameter_with(d, self.vault.open) for d in docs]

    async def custom_tags(self) -> set[str]:
        """Every custom parameter's tag in lower case (``tag_key``): tags are unique, and
        used in actions, regardless of case."""
        docs = await self.parameters.find({}, {"tag": 1}).to_list(None)
        return {d["tag"].casefold() for d in docs}

    async def get_parameter(self, tag: str) -> dict[str, Any]:
        """The parameter tagged ``tag`` in any case, as placeholders find it: ``TEAM`` is
        ``team``. By ``tag_key``, the lower-cased tag its unique index holds (a plain
        index: no collation, which FerretDB 1.24 does not have)."""
        doc = await self.parameters.find_one({"tag_key": tag.casefold()})
        if doc is None:
            raise NotFound(f"no parameter with tag {tag[:64]!r}", field="tag")
        return self._parameter_with(doc, self.vault.open)

    async def insert_parameter(self, doc: dict[str, Any]) -> dict[str, Any]:
        created = now()
        doc = {**doc, "_id": ObjectId(), "created_at": created, "updated_at": created}
        with unique(f"a parameter tagged {doc['tag']!r} exists", "input.tag"):
            await self.parameters.insert_one(self._parameter_with(doc, self.vault.seal))
        await self.changed()
        return doc

    async def replace_parameter(self, tag: str, doc: dict[str, Any]) -> dict[str, Any]:
        current = await self.get_parameter(tag)
        with unique(f"a parameter tagged {doc['tag']!r} exists", "input.tag"):
            updated = await self.parameters.find_one_and_update(
                {"_id": current["_id"]},
                {"$set": self._parameter_with({**doc, "updated_at": now()}, self.vault.seal)},
                return_document=ReturnDocument.AFTER,
            )
        if updated is None:
            raise NotFound(f"no parameter with tag {tag[:64]!r}", field="tag")
        await self.changed()
        return self._parameter_with(updated, self.vault.open)

    async def parameter_values(self) -> list[dict[str, Any]]:
        """Every custom parameter's tag, value (opened) and secret flag, for rendering."""
        docs = await self.parameters.find({}, {"tag": 1, "value": 1, "secret": 1}).to_list(None)
        return [self._parameter_with(d, self.vault.open) for d in docs]

    async def reseal(self) -> int:
        """Seal every stored secret again with the first key (and seal plain ones); the
        number of documents rewritten. Run after putting a new key first."""
        count = 0
        for doc in await self.actions.find({}).to_list(None):
            fresh = self._auth_with(doc, self.vault.reseal)
            if fresh != doc:
                await self.actions.replace_one({"_id": doc["_id"]}, fresh)
                count += 1
        for doc in await self.parameters.find({"secret": True}).to_list(None):
            fresh = self._parameter_with(doc, self.vault.reseal)
            if fresh != doc:
                await self.parameters.replace_one({"_id": doc["_id"]}, fresh)
                count += 1
        if count:
            await self.changed()
        return count

    @staticmethod
    def _parameter_with(doc: dict[str, Any], change: Any) -> dict[str, Any]:
        return {**doc, "value": change(doc["value"])} if doc.get("secret") else doc

    async def delete_parameter(self, tag: str) -> None:
        doc = await self.get_parameter(tag)
        await self.parameters.delete_one({"_id": doc["_id"]})
        await self.changed()

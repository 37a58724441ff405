"""API keys: random, shown once, stored as SHA-256 hashes, looked up by hash.

A key reads ``em_`` followed by 43 URL-safe characters (256 random bits). Such a key
needs no slow password hash: guessing one is as hard as guessing the random bits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from event_manager.errors import BadInput
from tenants.database import Database, now

KEY_PREFIX = "em_"
ROLES = ("SYSTEM_ADMIN", "TENANT_ADMIN", "PBX", "VIEWER")
API_KEYS = "#api-keys"
"""The name under which a revocation is announced (``Database.changed``; no tenant code
starts with ``#``): API processes forget the keys they accepted before it is answered."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, and the tenant the key belongs to (None for system keys)."""

    key_id: str
    role: str
    tenant: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Keys in ``api_keys``; beside each, ``api_key_hashes`` holds ``{_id: hash, key_id,
    role, tenant, revoked}``, so that the lookup on every request is one find by ``_id``
    (the only lookup FerretDB answers from an index)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.collection = db.api_keys
        self.by_hash = db.system["api_key_hashes"]

    async def create(self, role: str, label: str, tenant: str | None) -> tuple[str, dict[str, Any]]:
        if role not in ROLES:
            raise BadInput(f"role must be one of {', '.join(ROLES)}", field="role")
        label = label.strip()
        if not 1 <= len(label) <= 100:
            raise BadInput("label must be 1-100 characters", field="label")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        doc = {
            "_id": ObjectId(),
            "hash": hash_key(key),
            "prefix": key[:10],
            "tenant": tenant,
            "role": role,
            "label": label,
            "created_at": now(),
            "revoked": False,
        }
        await self.collection.insert_one(doc)
        await self.by_hash.insert_one(self._entry(doc))
        return key, doc

    @staticmethod
    def _entry(doc: dict[str, Any]) -> dict[str, Any]:
        return {"_id": doc["hash"], "key_id": doc["_id"], "role": doc["role"],
                "tenant": doc["tenant"], "revoked": doc["revoked"]}

    async def authenticate(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        entry = await self.by_hash.find_one({"_id": digest})
        if entry is None:  # a key made before the hash index: index it now
            doc = await self.collection.find_one({"hash": digest})
            if doc is None:
                return None
            entry = self._entry(doc)
            await self.by_hash.replace_one({"_id": digest}, entry, upsert=True)
        if not hmac.compare_digest(entry["_id"], digest) or entry["revoked"]:
            return None
        return Principal(key_id=str(entry["key_id"]), role=entry["role"],
                         tenant=entry["tenant"])

    async def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        query = {} if tenant is None else {"tenant": tenant}
        return await self.collection.find(query).sort("created_at", 1).to_list(None)

    async def get(self, key_id: str) -> dict[str, Any] | None:
        if not ObjectId.is_valid(key_id):
            return None
        return await self.collection.find_one({"_id": ObjectId(key_id)})

    async def revoke(self, key_id: str) -> None:
        """Revoked in the hash index first: from then on the key opens nothing."""
        doc = await self.get(key_id)
        if doc is None:
            return
        await self.by_hash.replace_one({"_id": doc["hash"]}, {**self._entry(doc),
                                                              "revoked": True}, upsert=True)
        await self.collection.update_one({"_id": doc["_id"]}, {"$set": {"revoked": True}})
        await self.db.changed(API_KEYS)  # API processes forget the keys they accepted

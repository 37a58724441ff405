"""Imports: actions from a Postman collection, or copies of the Master tenant's actions.

Both end in ``write``: each chosen action is checked like a created one, then written
under the conflict policy. SKIP leaves an existing action of the same name alone, RENAME
imports as "Name (2)", OVERWRITE replaces the existing action's request but keeps its id,
so the events it is attached to keep it; ``renamed`` also lists a request numbered for
its repeated name. A request that cannot become an action is reported in ``errors`` with
the reason, the same one the listing shows; the others are still imported. Asked to, a
Postman import also makes the collection's new variables custom parameters. A refusal of the
whole import (a file that is not a collection, an unknown ref or id) writes nothing, and
a write that fails midway is undone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import strawberry

from event_manager.errors import BadInput, Conflict, NotFound
from resolvers import postman, validation
from resolvers.audit import record
from resolvers.context import READ, WRITE
from schema.enums import ApiKeyLocation, AuthType, BodyType, ConflictPolicy, HttpMethod
from schema.imports import (
    ImportResult,
    PostmanCollection,
    PostmanItem,
    PostmanRequest,
    PostmanVariable,
)
from schema.inputs import ActionInput, AuthorizationInput, KeyValueInput, ParameterInput
from schema.types import Action, Parameter
from tenants.audit import summary
from tenants.catalog import SYSTEM_TAGS
from tenants.database import object_id
from tenants.store import TenantStore

log = logging.getLogger("event_manager.api")

MAX_NAME = 100
YIELD_EVERY = 50
"""Actions checked between two turns of the event loop (about 7 ms of work)."""
COPIED = ("description", "method", "url", "query", "headers", "body_type", "body_fields",
          "raw_body", "raw_content_type", "auth", "timeout_seconds", "signing_secret", "tags",
          "policy", "ca_certificate")
"""What an action imported from the master tenant takes from the master's."""


# --- Postman ---------------------------------------------------------------------------

async def parse(info: strawberry.Info, collection: str) -> postman.ParsedCollection:
    """The collection read in a child process (a 10 MB file takes seconds of CPU), or
    ``BadInput`` naming the limit or the flaw."""
    pool = info.context.parsers
    try:
        if pool is None:
            return postman.parse_collection(collection)
        return await pool.run(postman.parse_collection, collection, what="collection",
                              field="collection")
    except postman.CollectionError as error:
        raise BadInput(f"collection is {error.message}"
                       if error.message.startswith(("not ", "larger"))
                       else f"collection {error.message}" if error.message.startswith("has ")
                       else f"collection: {error.message}", field="collection") from None


async def postman_requests(info: strawberry.Info, collection: str) -> list[PostmanRequest]:
    """Every request, in file order, for "select one by one or all": those that cannot be
    imported too, with the reason (a HEAD request, an ftp:// URL)."""
    await info.context.tenant_store(READ)
    parsed = await parse(info, collection)
    return [PostmanRequest(ref=c.request.ref, name=c.request.name, folder=c.request.folder,
                           method=HttpMethod.__members__.get(c.request.method, HttpMethod.GET),
                           url=c.request.url, written_method=c.request.method,
                           importable=c.problem is None, reason=c.problem)
            for c in await check(parsed.requests)]


async def postman_collection(info: strawberry.Info, collection: str) -> PostmanCollection:
    """Everything the file holds, importable or not, with the reasons and warnings."""
    store = await info.context.tenant_store(READ)
    parsed = await parse(info, collection)
    items = [PostmanItem(ref=c.request.ref, name=c.request.name, folder=c.request.folder,
                         method=c.request.method, url=c.request.url,
                         importable=c.problem is None, problem=c.problem,
                         warnings=c.request.warnings)
             for c in await check(parsed.requests)]
    return PostmanCollection(name=parsed.name, format=parsed.format, warnings=parsed.warnings,
                             requests=items,
                             new_variables=await new_variables(store, parsed.variables))


async def import_postman_collection(
    info: strawberry.Info, collection: str, refs: list[str] | None = None,
    on_conflict: ConflictPolicy | None = ConflictPolicy.SKIP,
    create_parameters: bool | None = False,
) -> ImportResult:
    """``createParameters`` also makes the collection's new variables (its own, its
    folders' and its requests') custom parameters, with the values it gives them."""
    store = await info.context.tenant_store(WRITE)
    parsed = await parse(info, collection)
    chosen = parsed.requests
    if refs is not None:
        by_ref = {r.ref: r for r in parsed.requests}
        for i, ref in enumerate(refs):
            if ref not in by_ref:
                raise BadInput(f"the collection has no request {ref[:60]!r}", field=f"refs[{i}]")
        chosen = [by_ref[ref] for ref in dict.fromkeys(refs)]
    if not chosen:
        raise BadInput("the collection has no requests to import", field="collection")
    origin = f"postman:{parsed.name}"
    docs, errors, warnings = [], [], list(parsed.warnings)
    for checked in await check(chosen):
        request = checked.request
        warnings += [f"{request.name}: {w}" for w in request.warnings]
        if checked.doc is None:
            errors.append(f"{request.name}: {checked.problem}")
            continue
        # A collection says nothing of delivery policy: a new action has the defaults
        # (none stored), one overwritten keeps its own.
        docs.append({**{k: v for k, v in checked.doc.items() if k != "policy"},
                     "origin": origin})
    created: list[dict[str, Any]] = []
    if create_parameters:
        created = await add_parameters(store, parsed, errors)
    written = {r.name.casefold(): r.written_name for r in chosen}
    try:
        result = await write(store, docs, on_conflict or ConflictPolicy.SKIP, written)
    except BaseException:
        await remove_parameters(store, created)
        raise
    result.errors = errors
    result.warnings = warnings
    result.created_parameters = [Parameter.from_doc(doc) for doc in created]
    result.new_variables = await new_variables(store, parsed.variables)
    await audit_import(info, store, "importPostmanCollection", parsed.name, result, created)
    return result


@dataclass(frozen=True)
class Checked:
    """A request of a collection with the action it makes, or why it makes none."""

    request: postman.ParsedRequest
    doc: dict[str, Any] | None
    problem: str | None


async def check(requests: list[postman.ParsedRequest]) -> list[Checked]:
    """Each request checked as a created action is: the parser's problem ("method HEAD is
    not supported") or the first check it fails ("url must start with http:// or https://
    and a host, or with a {{parameter}} (input.url)" for an ftp:// URL)."""
    out = []
    for count, request in enumerate(requests, 1):
        if count % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # other clients' turn: 1,000 checks take 0.14 s
        if request.action is None:
            out.append(Checked(request, None, request.problem))
            continue
        try:
            out.append(Checked(request, validation.action(action_input(request.action)), None))
        except BadInput as error:
            out.append(Checked(request, None, f"{error.message} ({error.field})"))
    return out


def action_input(action: dict[str, Any]) -> ActionInput:
    """The parser's action (GraphQL names) as the input type that ``validation`` checks."""
    def rows(items: list[dict[str, Any]]) -> list[KeyValueInput]:
        return [KeyValueInput(key=r["key"], value=r["value"], enabled=r["enabled"])
                for r in items]

    auth = action["authorization"]
    return ActionInput(
        name=action["name"], url=action["url"], description=action["description"],
        method=HttpMethod(action["method"]), query=rows(action["query"]),
        headers=rows(action["headers"]), body_type=BodyType(action["bodyType"]),
        body_fields=rows(action["bodyFields"]), raw_body=action["rawBody"],
        raw_content_type=action["rawContentType"],
        authorization=AuthorizationInput(
            type=AuthType(auth["type"]), api_key_name=auth["apiKeyName"],
            api_key_value=auth["apiKeyValue"],
            api_key_in=ApiKeyLocation(auth["apiKeyIn"] or "HEADER"),
            username=auth["username"], password=auth["password"], token=auth["token"]),
    )


async def new_variables(store: TenantStore, variables: dict[str, str]) -> list[PostmanVariable]:
    """The collection's variables that name neither a system nor a custom parameter,
    whatever their case (``TEAM`` is parameter ``team``)."""
    known = SYSTEM_TAGS | await store.custom_tags()
    return [PostmanVariable(key=k, value=v) for k, v in variables.items()
            if k.casefold() not in known and validation.TAG_NAME.match(k)]


async def add_parameters(store: TenantStore, parsed: postman.ParsedCollection,
                         errors: list[str]) -> list[dict[str, Any]]:
    """The collection's new variables made custom parameters, each checked as a created
    one; one that is refused is reported in ``errors`` ("variable 'x': …") and the others
    are still made. An unexpected failure removes those made."""
    description = f"from the Postman collection {parsed.name[:400]!r}"
    created: list[dict[str, Any]] = []
    try:
        for variable in await new_variables(store, parsed.variables):
            try:
                doc = validation.parameter(ParameterInput(
                    tag=variable.key, value=variable.value, description=description))
                created.append(await store.insert_parameter(doc))
            except (BadInput, Conflict) as error:
                errors.append(f"variable {variable.key!r}: {error.message} ({error.field})")
    except BaseException:
        await remove_parameters(store, created)
        raise
    return created


async def remove_parameters(store: TenantStore, created: list[dict[str, Any]]) -> None:
    for doc in reversed(created):
        try:
            await store.delete_parameter(doc["tag"])
        except Exception:
            log.exception("import of tenant %s: could not undo parameter %s",
                          store.code, doc["tag"])


# --- Master ----------------------------------------------------------------------------

async def master_store(info: strawberry.Info) -> TenantStore | None:
    master = await info.context.registry.master()
    return TenantStore(info.context.db, master) if master else None


async def master_actions(info: strawberry.Info, search: str | None = None) -> list[Action]:
    """The Master tenant's actions, as the importing tenant would see them (its own
    parameters decide what is undefined); secrets masked as everywhere."""
    store = await info.context.tenant_store(READ)
    master = await master_store(info)
    if master is None:
        return []
    return [Action.from_doc(doc, store) for doc in await master.list_actions(search)]


async def import_master_actions(
    info: strawberry.Info, ids: list[strawberry.ID],
    on_conflict: ConflictPolicy | None = ConflictPolicy.SKIP,
) -> ImportResult:
    store = await info.context.tenant_store(WRITE)
    if not ids:
        raise BadInput("choose at least one action", field="ids")
    master = await master_store(info)
    if master is not None and master.code == store.code:
        raise BadInput("this is the Master tenant: its actions are already here", field="ids")
    found: dict[str, dict[str, Any]] = {}
    if master is not None:
        oids = [oid for oid in map(object_id, ids) if oid]
        found = {str(d["_id"]): d for d in
                 await master.actions.find({"_id": {"$in": oids}}).to_list(None)}
    for i, action_id in enumerate(ids):
        if str(action_id) not in found:
            raise NotFound(f"the Master tenant has no action {str(action_id)[:40]!r}",
                           field=f"ids[{i}]")
    docs = []
    for action_id in dict.fromkeys(map(str, ids)):
        source = found[action_id]
        docs.append({"name": source["name"], "name_key": source["name"].casefold(),
                     **{k: source[k] for k in COPIED if k in source},
                     "origin": f"master:{source['name']}"})
    result = await write(store, docs, on_conflict or ConflictPolicy.SKIP)
    await audit_import(info, store, "importMasterActions", master.code if master else None,
                       result, [])
    return result


async def audit_import(info: strawberry.Info, store: TenantStore, operation: str,
                       source: str | None, result: ImportResult,
                       parameters: list[dict[str, Any]]) -> None:
    """One entry per import: the actions it wrote (by name, as written) and the
    parameters it made (by tag; their values are in the parameters' own history)."""
    changed = [summary("imported", [a.name for a in result.imported])]
    if result.renamed:
        changed.append(summary("renamed", result.renamed))
    if parameters:
        changed.append(summary("created_parameters", [p["tag"] for p in parameters]))
    await record(info, store.code, operation, "import", None, source, changed)


# --- Writing under a conflict policy ---------------------------------------------------

async def write(store: TenantStore, docs: list[dict[str, Any]], policy: ConflictPolicy,
                written: dict[str, str] | None = None) -> ImportResult:
    """Insert ``docs`` as actions under ``policy``; undo everything if a write fails.

    ``renamed`` lists each action saved under another name than the one it was given:
    by the RENAME policy, or already by the collection (``written``, by name key: its
    second "Ping" is "Ping (2)"), e.g. "Ping → Ping (2)".

    Existing actions are known by name only (opening the secrets of 1,000 of them took
    0.1 s of the event loop); one is read whole when it is about to be overwritten."""
    names = await store.actions.find({}, {"name_key": 1}).to_list(None)
    existing = {d["name_key"]: str(d["_id"]) for d in names}
    taken = set(existing)
    imported: list[dict[str, Any]] = []
    skipped: list[str] = []
    renamed: list[str] = []
    undo: list[tuple[str, dict[str, Any]]] = []  # ("inserted", doc) or ("replaced", old)
    try:
        for doc in docs:
            given = (written or {}).get(doc["name_key"], doc["name"])
            current = existing.get(doc["name_key"])
            if doc["name_key"] not in taken:
                saved = await store.insert_action(doc)
                undo.append(("inserted", saved))
            elif policy == ConflictPolicy.RENAME:
                name = free_name(doc["name"], taken)
                saved = await store.insert_action({**doc, "name": name,
                                                   "name_key": name.casefold()})
                undo.append(("inserted", saved))
            elif policy == ConflictPolicy.OVERWRITE and current is not None:
                before = await store.get_action(current)
                saved = await store.replace_action(current, doc)
                undo.append(("replaced", before))
                existing.pop(doc["name_key"])  # overwritten once; a later namesake is skipped
            else:
                skipped.append(doc["name"])
                continue
            taken.add(saved["name_key"])
            imported.append(saved)
            if saved["name"] != given:
                renamed.append(f"{given} → {saved['name']}")
    except BaseException:
        await rollback(store, undo)
        raise
    return ImportResult(imported=[Action.from_doc(d, store) for d in imported],
                        skipped=skipped, renamed=renamed, errors=[])


def free_name(name: str, taken: set[str]) -> str:
    """``name (2)``, ``name (3)``…, the first not taken, cut to fit 100 characters."""
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = name[:MAX_NAME - len(suffix)].rstrip() + suffix
        if candidate.casefold() not in taken:
            return candidate
        n += 1


async def rollback(store: TenantStore, undo: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, doc in reversed(undo):
        try:
            if kind == "inserted":
                await store.actions.delete_one({"_id": doc["_id"]})
                await store.changed()
            else:
                await store.restore_action(doc)
        except Exception:
            log.exception("import of tenant %s: could not undo %s of action %s",
                          store.code, kind, doc["_id"])

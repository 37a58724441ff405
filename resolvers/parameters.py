"""Parameters: the 13 read-only system ones and the tenant's custom constants."""

from __future__ import annotations

import strawberry

from event_manager.errors import BadInput
from resolvers import validation
from resolvers.audit import record
from resolvers.context import READ, WRITE
from schema.inputs import ParameterInput
from schema.types import Parameter
from tenants.audit import changes
from tenants.catalog import SYSTEM_PARAMETERS, SYSTEM_TAGS

SYSTEM = [
    Parameter(tag=p.tag, value="", system=True, secret=False, description=p.description)
    for p in SYSTEM_PARAMETERS
]


def _read_only(tag: str) -> None:
    if tag.casefold() in SYSTEM_TAGS:
        raise BadInput(f"{tag!r} is a system parameter: it cannot be edited or deleted",
                       field="tag")


async def parameters(info: strawberry.Info, search: str | None = None) -> list[Parameter]:
    """System parameters first (their value is filled per event), then custom ones by tag."""
    store = await info.context.tenant_store(READ)
    needle = (search or "").casefold()
    system = [p for p in SYSTEM if needle in p.tag.casefold()]
    return system + [Parameter.from_doc(d) for d in await store.list_parameters(search)]


async def create_parameter(info: strawberry.Info, input: ParameterInput) -> Parameter:
    store = await info.context.tenant_store(WRITE)
    created = await store.insert_parameter(validation.parameter(input))
    await record(info, store.code, "createParameter", "parameter", created["tag"],
                 created["tag"], changes(None, created))
    return Parameter.from_doc(created)


async def update_parameter(info: strawberry.Info, tag: str, input: ParameterInput) -> Parameter:
    store = await info.context.tenant_store(WRITE)
    _read_only(tag)
    current = await store.get_parameter(tag)
    doc = validation.parameter(input, current)
    updated = await store.replace_parameter(tag, doc)
    await record(info, store.code, "updateParameter", "parameter", updated["tag"],
                 updated["tag"], changes(current, updated))
    return Parameter.from_doc(updated)


async def delete_parameter(info: strawberry.Info, tag: str) -> bool:
    store = await info.context.tenant_store(WRITE)
    _read_only(tag)
    current = await store.get_parameter(tag)
    await store.delete_parameter(tag)
    await record(info, store.code, "deleteParameter", "parameter", current["tag"],
                 current["tag"], changes(current, None))
    return True

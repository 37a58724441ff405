"""The served schema against the contract: every type, field, argument, enum value and
operation of ../shared/contract/schema.graphql must be there with the same type.

PENDING lists what later issues deliver; each issue empties its part. Nothing pending
may be served as a stub, which the last test checks.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    build_schema,
    value_from_ast_untyped,
)

from tests.conftest import SHARED, Client

PENDING: dict[str, set[str]] = {}
"""Nothing is pending: issue 16 built the last names of the contract."""
PENDING_NAMES = set().union(*PENDING.values())
CONTRACT_PATH = SHARED / "contract" / "schema.graphql"
ADDITIONS = """
extend type Query {
  auditLog(first: Int = 50, after: String, filter: AuditFilter): AuditPage!
}
type AuditPage { items: [AuditEntry!]! nextCursor: String }
type AuditEntry {
  id: ID! at: DateTime! operation: String! target: AuditTarget! actor: AuditActor!
  changes: [AuditChange!]!
}
type AuditTarget { kind: String! id: String name: String }
type AuditActor { keyId: ID label: String! role: Role }
type AuditChange { field: String! before: JSON after: JSON cut: Boolean! }
input AuditFilter {
  operations: [String!] targetKind: String targetId: String actorKeyId: ID
  since: DateTime until: DateTime
}
"""
"""What this project added to the contract (issue 19's audit trail): served as written
here from now on, so it is checked as the contract is. The shared contract file is
not ours to edit; clients read these from the served schema."""


def served_sdl() -> str:
    result = subprocess.run([sys.executable, "-m", "event_manager", "schema"],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


@pytest.fixture(scope="module")
def schemas() -> tuple[GraphQLSchema, GraphQLSchema]:
    return build_schema(CONTRACT_PATH.read_text() + ADDITIONS), build_schema(served_sdl())


def differences(contract: GraphQLSchema, served: GraphQLSchema) -> list[str]:
    """What the contract has that the served schema lacks or types differently."""
    found: list[str] = []
    for name, ctype in contract.type_map.items():
        if name.startswith("__") or name in PENDING_NAMES:
            continue
        stype = served.type_map.get(name)
        if stype is None:
            found.append(f"missing type {name}")
            continue
        if type(stype) is not type(ctype):
            found.append(f"{name} is a {type(stype).__name__}, "
                         f"contract says {type(ctype).__name__}")
            continue
        if isinstance(ctype, GraphQLEnumType):
            for value in set(ctype.values) - set(stype.values):
                if f"{name}.{value}" not in PENDING_NAMES:
                    found.append(f"missing enum value {name}.{value}")
        if isinstance(ctype, GraphQLObjectType | GraphQLInputObjectType):
            for fname, cfield in ctype.fields.items():
                if f"{name}.{fname}" in PENDING_NAMES:
                    continue
                sfield = stype.fields.get(fname)
                if sfield is None:
                    found.append(f"missing field {name}.{fname}")
                    continue
                if str(sfield.type) != str(cfield.type):
                    found.append(f"{name}.{fname} is {sfield.type}, contract says {cfield.type}")
                elif isinstance(ctype, GraphQLInputObjectType) and not same_default(cfield,
                                                                                    sfield):
                    found.append(f"{name}.{fname} defaults to {default_of(sfield)!r}, "
                                 f"contract says {default_of(cfield)!r}")
                for aname, carg in getattr(cfield, "args", {}).items():
                    sarg = sfield.args.get(aname)
                    if sarg is None:
                        found.append(f"missing argument {name}.{fname}({aname})")
                    elif str(sarg.type) != str(carg.type):
                        found.append(f"{name}.{fname}({aname}) is {sarg.type}, "
                                     f"contract says {carg.type}")
                    elif not same_default(carg, sarg):
                        found.append(f"{name}.{fname}({aname}) defaults to "
                                     f"{default_of(sarg)!r}, contract says "
                                     f"{default_of(carg)!r}")
                for aname, sarg in getattr(sfield, "args", {}).items():
                    if aname not in getattr(cfield, "args", {}) and str(sarg.type).endswith("!"):
                        found.append(f"{name}.{fname}({aname}) is an added required argument")
    return found


def default_of(argument: Any) -> Any:
    """The default an argument or input field is declared with, as a Python value
    (``Undefined`` without one); read from the SDL, since graphql-core leaves a custom
    scalar's default (``JSON = {}``) unparsed."""
    node = argument.ast_node.default_value if argument.ast_node is not None else None
    return Undefined if node is None else value_from_ast_untyped(node)


def same_default(contract: Any, served: Any) -> bool:
    """An argument or input field of the contract with a default value has the same one
    served (the contract's ``params: JSON = {}`` is not ``= null``); one without a default
    may have any."""
    return default_of(contract) is Undefined or default_of(served) == default_of(contract)


def test_served_schema_contains_the_contract(schemas: tuple[GraphQLSchema, GraphQLSchema]) -> None:
    assert differences(*schemas) == []


def test_conformance_check_catches_a_missing_field(
    schemas: tuple[GraphQLSchema, GraphQLSchema],
) -> None:
    contract, _ = schemas
    broken = build_schema(served_sdl().replace("  timeoutSeconds: Float!\n", "", 1))
    assert "missing field Action.timeoutSeconds" in differences(contract, broken)


def test_conformance_check_catches_a_changed_type(
    schemas: tuple[GraphQLSchema, GraphQLSchema],
) -> None:
    contract, _ = schemas
    broken = build_schema(served_sdl().replace("  name: String!\n", "  name: String\n", 1))
    assert any("contract says String!" in d for d in differences(contract, broken))


def test_conformance_check_catches_a_changed_default(
    schemas: tuple[GraphQLSchema, GraphQLSchema],
) -> None:
    contract, _ = schemas
    sdl = served_sdl()
    assert "testEvent(event: EventType!, params: JSON = {  }" in sdl
    broken = build_schema(sdl.replace("params: JSON = {  }", "params: JSON = null"))
    found = differences(contract, broken)
    assert "Mutation.testEvent(params) defaults to None, contract says {}" in found
    assert "TriggerInput.params defaults to None, contract says {}" in found


def test_the_additions_are_checked_and_no_mutation_writes_the_audit_log(
    schemas: tuple[GraphQLSchema, GraphQLSchema],
) -> None:
    contract, served = schemas
    assert "auditLog" in contract.query_type.fields
    broken = build_schema(served_sdl())
    del broken.type_map["AuditChange"].fields["cut"]  # type: ignore[union-attr]
    assert "missing field AuditChange.cut" in differences(contract, broken)
    assert not [name for name in served.mutation_type.fields if "audit" in name.casefold()]


def test_nothing_pending_is_served_as_a_stub(schemas: tuple[GraphQLSchema, GraphQLSchema]) -> None:
    _, served = schemas
    stubs = set()
    for name in PENDING_NAMES:
        type_name, _, field_name = name.partition(".")
        stype = served.type_map.get(type_name)
        members = getattr(stype, "fields", None) or getattr(stype, "values", {})
        if stype is not None and (not field_name or field_name in members):
            stubs.add(name)
    assert stubs == set()


def test_introspection_answers_as_graphiql_asks(system: Client) -> None:
    """GraphiQL's first request; a default it cannot print used to fail it."""
    from graphql import get_introspection_query

    reply = system(get_introspection_query(descriptions=True))
    types = {t["name"]: t for t in reply.data["__schema"]["types"]}
    params = {f["name"]: f["defaultValue"] for f in types["TriggerInput"]["inputFields"]}
    assert params["params"].replace(" ", "") == "{}"

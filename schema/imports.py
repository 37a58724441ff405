"""Types of the imports: Postman collections and the Master tenant's actions."""

from __future__ import annotations

import strawberry

from schema.enums import HttpMethod
from schema.types import Action, Parameter


@strawberry.type
class PostmanRequest:
    """A request of the file, importable or not."""

    ref: str
    name: str
    folder: str | None
    method: HttpMethod = strawberry.field(
        description="GET when the collection's method is none of these (see writtenMethod)")
    url: str
    written_method: str = strawberry.field(
        description='the method as the collection writes it, e.g. "HEAD"')
    importable: bool
    reason: str | None = strawberry.field(
        description='why it cannot be imported, e.g. "method HEAD is not supported"')


@strawberry.type
class PostmanVariable:
    key: str
    value: str


@strawberry.type
class ImportResult:
    imported: list[Action]
    skipped: list[str]
    renamed: list[str] = strawberry.field(description='"Old name → New name (2)"')
    errors: list[str] = strawberry.field(
        description='"Request name: why it was not imported"')
    warnings: list[str] = strawberry.field(
        default_factory=list,
        description="what was left out of the requests that were imported (scripts, files…)")
    new_variables: list[PostmanVariable] = strawberry.field(
        default_factory=list,
        description="the collection's variables that are not parameters of the tenant yet, "
                    "with their values, to add as custom parameters in one step")
    created_parameters: list[Parameter] = strawberry.field(
        default_factory=list,
        description="the parameters made of the collection's variables (createParameters)")


@strawberry.type
class PostmanItem:
    """A request of the file, importable or not (``method`` as written, e.g. HEAD)."""

    ref: str
    name: str
    folder: str | None
    method: str
    url: str
    importable: bool
    problem: str | None
    warnings: list[str]


@strawberry.type
class PostmanCollection:
    name: str
    format: str = strawberry.field(description='"v2.1.0", "v2.0.0" or "v1"')
    requests: list[PostmanItem]
    warnings: list[str]
    new_variables: list[PostmanVariable]

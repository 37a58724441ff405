"""How much one request may ask for. Each refusal is a BAD_USER_INPUT error whose message
names the limit; nothing runs and nothing is written.

Where each limit is checked:
- ``MAX_JSON_VALUES``, ``MAX_WS_MESSAGE_CHARS``: by the app
  (``event_manager/app.py``) on the HTTP body or WebSocket message, before GraphQL sees it.
- ``MAX_QUERY_CHARS``, ``MAX_TOKENS``: by graphql-core's parser (``ParseLimits``).
- ``MAX_FIELDS``, ``MAX_ALIASES``, ``MAX_DEPTH``: by ``QueryLimits`` on the parsed document,
  before validation. Validation is the costly step: its overlapping-fields rule compares
  every pair of same-named fields, so ``{ me { role } me { role } … }`` with 500 repeats
  takes about 0.2 s to validate and 1,000 repeats about a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache

from event_manager.config import Settings
from event_manager.errors import ApiError
from resolvers.context import ANYONE

MAX_BODY_BYTES: int = Settings.model_fields["http_max_body_bytes"].default
"""An HTTP request body, by default: the setting ``EVENT_MANAGER_HTTP_MAX_BODY_BYTES``
(checked by the app, ``event_manager/app.py``)."""
MAX_JSON_VALUES = 100_000
"""Values (objects, arrays, strings, numbers…) in one request's JSON. A batch of 500
triggers with 100 params each holds about 51,500."""
MAX_WS_MESSAGE_CHARS = 64 * 1024
"""One WebSocket message: connection_init, subscribe (query and filter), complete."""
MAX_QUERY_CHARS = 500_000
"""The GraphQL document's text. Large values belong in variables."""
MAX_TOKENS = 5_000
"""Lexical tokens of the document, comments included."""
MAX_FIELDS = 200
"""Field selections written in the document, fragments counted once. The introspection
query of graphql-core with every option has 73."""
MAX_ALIASES = 20
MAX_DEPTH = 10
"""Nesting of selections: ``{ me { role } }`` is 1 deep. Introspection fields are not
counted; graphql-core's MaxIntrospectionDepthRule bounds those."""


def _fields(selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    """Every field written under ``selection_set``, fragments not expanded."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection
        yield from _fields(getattr(selection, "selection_set", None))


def _depth(selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode],
           memo: dict[str, int], active: frozenset[str]) -> int:
    """How deep ``selection_set`` nests, fragments expanded (each measured once)."""
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.selection_set and not selection.name.value.startswith("__"):
                deepest = max(deepest, 1 + _depth(selection.selection_set, fragments, memo,
                                                  active))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, memo, active))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in active:
                continue  # unknown fragments and cycles are validation's to report
            if name not in memo:
                memo[name] = _depth(fragment.selection_set, fragments, memo, active | {name})
            deepest = max(deepest, memo[name])
    return deepest


def excess(document: DocumentNode) -> str | None:
    """What ``document`` has too much of, as a message for the client, or None."""
    fields = [f for d in document.definitions for f in _fields(getattr(d, "selection_set", None))]
    if len(fields) > MAX_FIELDS:
        return f"the query selects {len(fields)} fields; at most {MAX_FIELDS} are allowed"
    aliases = sum(1 for f in fields if f.alias is not None)
    if aliases > MAX_ALIASES:
        return f"the query uses {aliases} aliases; at most {MAX_ALIASES} are allowed"
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    memo: dict[str, int] = {}
    try:
        depth = max((_depth(d.selection_set, fragments, memo, frozenset())
                     for d in document.definitions if isinstance(d, OperationDefinitionNode)),
                    default=0)
    except RecursionError:  # a chain of hundreds of fragments, each spreading the next
        return f"the query is nested too deeply; at most {MAX_DEPTH} levels are allowed"
    if depth > MAX_DEPTH:
        return f"the query is nested {depth} levels deep; at most {MAX_DEPTH} are allowed"
    return None


class ParseLimits(ParserCache):
    """Parses under ``MAX_QUERY_CHARS`` and ``MAX_TOKENS``, through the shared cache."""

    def on_operation(self) -> Iterator[None]:
        # graphql-core 3.3's parse() takes max_source_length; Strawberry's ParseOptions
        # type only names max_tokens. Both reach parse() as keyword arguments.
        options = cast(dict[str, Any], self.execution_context.parse_options)
        options["max_tokens"] = MAX_TOKENS
        options["max_source_length"] = MAX_QUERY_CHARS
        yield

    def on_parse(self) -> Iterator[None]:
        """A document that does not parse is left to Strawberry, which parses it again
        inside its own error handling. ParserCache's error would escape that handling:
        over WebSocket the subscription would end without saying why."""
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(context.query,
                                                                  **context.parse_options)
        yield


class QueryLimits(ValidationCache):
    """Refuses a document over ``MAX_FIELDS``, ``MAX_ALIASES`` or ``MAX_DEPTH`` before
    validating it; validates the others through the shared cache."""

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        problem = excess(document) if document is not None else None
        if problem is None:
            yield from super().on_validate()
            return
        self.execution_context.pre_execution_errors = [
            GraphQLError(problem, extensions={"code": "BAD_USER_INPUT"})
        ]
        yield


INTROSPECTION = frozenset({"__schema", "__type"})


def introspects(document: DocumentNode) -> bool:
    """Whether the document asks for the schema's description anywhere, fragments
    included (``__typename`` describes nothing and is not counted)."""
    return any(field.name.value in INTROSPECTION
               for definition in document.definitions
               for field in _fields(getattr(definition, "selection_set", None)))


class IntrospectionNeedsKey(SchemaExtension):
    """The schema is described (``__schema``, ``__type``) only to a caller with a valid
    API key: without one, such a document gets the same UNAUTHENTICATED answer as any
    other field, and nothing runs. Placed after ``QueryLimits``: its answer replaces the
    validation's (Strawberry reads the errors before the hooks' ends run)."""

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None and introspects(document):
            try:
                self.execution_context.context.require(ANYONE)
            except ApiError as error:
                self.execution_context.pre_execution_errors = [
                    GraphQLError(error.message, extensions=error.extensions)
                ]
        yield

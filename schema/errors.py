"""Where every error gets its contract code: the one mapping from exceptions to
``extensions.code``.

- our ``ApiError`` subclasses carry their own code (and ``field``);
- a database that does not answer becomes UNAVAILABLE;
- GraphQL syntax, validation and variable errors become BAD_USER_INPUT, with the
  input path as ``field`` when graphql-core names one (the limits of schema/limits.py
  arrive here as such errors);
- anything else is logged with its traceback and reaches the client as a masked
  INTERNAL error.
"""

from __future__ import annotations

import logging
import re

from graphql.error import GraphQLError
from graphql.validation.validate import ValidationAbortedError
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import MaskErrors

from event_manager.errors import ApiError

log = logging.getLogger("event_manager.api")

UNREACHABLE = (ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)
# graphql-core's words for a variable that does not fit its type, e.g.
# "Variable '$input' has invalid value at .authorization.type: Value 'X' does not exist"
# "Variable '$input' has invalid value: Expected value of type 'ActionInput' to include
#  required field 'url', found: ..."
VARIABLE = re.compile(r"^Variable '\$(\w+)'(?: has invalid value(?: at ([.\w\[\]]+))?)?")
REQUIRED_FIELD = re.compile(r"to include required field '(\w+)'")


def input_path(message: str) -> str | None:
    """``input.authorization.type`` from a variable error's message, when it names one."""
    match = VARIABLE.match(message)
    if match is None:
        return None
    path = match.group(1) + (match.group(2) or "")
    if required := REQUIRED_FIELD.search(message):
        path += "." + required.group(1)
    return path


def _with(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
    return GraphQLError(
        message, nodes=error.nodes, source=error.source, positions=error.positions,
        path=error.path, original_error=None, extensions=extensions,
    )


def contract_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, ApiError):
        return error
    if isinstance(original, UNREACHABLE):
        log.warning("database unreachable: %s", original)
        return _with(error, "the database is unavailable; try again shortly",
                     {"code": "UNAVAILABLE"})
    if original is None or isinstance(original, GraphQLError):
        extensions = dict(error.extensions or {})
        extensions.setdefault("code", "BAD_USER_INPUT")
        if "field" not in extensions and (path := input_path(error.message)):
            extensions["field"] = path
        message = error.message
        if isinstance(error, ValidationAbortedError) and message == "Validation aborted.":
            # graphql-core's work budget, spent by fragments nested or spread hundreds of times
            message = ("the query is too complex to validate: it nests or repeats fragments "
                       "or fields too much")
        return _with(error, message, extensions)
    log.error("unexpected error in %s", ".".join(map(str, error.path or [])),
              exc_info=original)
    return _with(error, "internal error; it has been logged", {"code": "INTERNAL"})


def contract_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Each error in the contract's shape; errors already in it pass unchanged."""
    return [e if "code" in (e.extensions or {}) else contract_error(e) for e in errors]


class ContractErrors(MaskErrors):
    """Rewrites every error of a result into the contract's shape."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return contract_errors(errors)

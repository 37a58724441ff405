"""Where every error gets its contract code: the one mapping from exceptions to
``extensions.code``.

- our ``ApiError`` subclasses carry their own code (and ``field``);
- a database that does not answer becomes UNAVAILABLE;
- GraphQL syntax, validation and variable errors become BAD_USER_INPUT, with the
  input path as ``field`` when graphql-core names one;
- anything else is logged with its traceback and reaches the client as a masked
  INTERNAL error.
"""

from __future__ import annotations

import logging
import re

from graphql.error import GraphQLError
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import MaskErrors

from event_manager.errors import ApiError

log = logging.getLogger("event_manager.api")

UNREACHABLE = (ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)
VARIABLE_PATH = re.compile(r"^Variable '\$(\w+)' got invalid value .*? at '([^']+)'")
VARIABLE_NAME = re.compile(r"^Variable '\$(\w+)'")


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
        if "field" not in extensions:
            if match := VARIABLE_PATH.match(error.message):
                extensions["field"] = match.group(2)
            elif match := VARIABLE_NAME.match(error.message):
                extensions["field"] = match.group(1)
        return _with(error, error.message, extensions)
    log.error("unexpected error in %s", ".".join(map(str, error.path or [])),
              exc_info=original)
    return _with(error, "internal error; it has been logged", {"code": "INTERNAL"})


class ContractErrors(MaskErrors):
    """Rewrites every error of a result into the contract's shape."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [contract_error(e) for e in errors]

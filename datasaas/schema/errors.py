"""The one GraphQL translation of errors: domain errors, parse/validation failures, the unexpected.

Every error leaves with ``extensions.code``:

- a ``DomainError`` from a resolver keeps its message (the REST message) and gets its
  ``graphql_code``: ``UNAUTHENTICATED``, ``FORBIDDEN``, ``BAD_USER_INPUT``, ``NOT_FOUND``,
  ``CONFLICT``; field details are added as ``extensions.details`` with GraphQL (camelCase) names;
- a syntax error, or a document refused for its size, and a document that fails validation
  (including the depth and alias limits) are ``BAD_USER_INPUT`` (the contract's closed list of
  codes), with ``extensions.reason`` ``GRAPHQL_PARSE_FAILED`` or ``GRAPHQL_VALIDATION_FAILED``;
- variable values that do not fit their declared types are ``BAD_USER_INPUT``;
- the database being unavailable (unreachable, pool exhausted, disk full) is
  ``SERVICE_UNAVAILABLE``, answered with HTTP 503 and ``Retry-After`` by the router;
- anything else is logged with its traceback and replaced by "Internal server error."
  (``INTERNAL_SERVER_ERROR``), so no internals reach the client.

Mutations turn ``InvalidInput`` and ``Conflict`` into ``userErrors`` instead (see
``datasaas.schema.mutation``), naming fields with ``field_path``.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.utils.str_converters import to_camel_case

from datasaas.errors import DomainError, ServiceUnavailable
from datasaas.storage.faults import is_unavailable

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
SERVICE_UNAVAILABLE = ServiceUnavailable.graphql_code
INTERNAL_MESSAGE = "Internal server error."


def with_code(
    error: GraphQLError, code: str, *, message: str | None = None, **extensions: Any
) -> GraphQLError:
    """Return a copy of ``error`` with ``extensions.code`` (and optionally a new message)."""
    return GraphQLError(
        error.message if message is None else message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), **extensions, "code": code},
    )


def is_unexpected(error: GraphQLError) -> bool:
    """Tell whether an error is a bug or an outage rather than a refusal we meant to give."""
    if error.extensions and "code" in error.extensions:
        return False
    original = error.original_error
    return original is not None and not isinstance(original, DomainError | GraphQLError)


def field_path(field: str) -> list[str]:
    """Turn a resolver field name (``metadata.plan``, ``visitor_id``) into GraphQL path parts."""
    head, *rest = field.split(".")
    return [to_camel_case(head), *rest]


def translate(error: GraphQLError) -> GraphQLError:
    """Return the client-facing form of an error, always carrying ``extensions.code``."""
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    if isinstance(original, DomainError):
        details = {}
        if original.details:
            details["details"] = [
                {"field": ".".join(field_path(d.field)), "message": d.message}
                for d in original.details
            ]
        return with_code(error, original.graphql_code, message=original.message, **details)
    if isinstance(error, GraphQLSyntaxError):
        return with_code(error, BAD_USER_INPUT, reason=PARSE_FAILED)
    if original is not None and is_unavailable(original):
        return GraphQLError(
            ServiceUnavailable().message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": SERVICE_UNAVAILABLE},
        )
    if is_unexpected(error):
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": INTERNAL_SERVER_ERROR},
        )
    # What is left is raised by graphql-core before execution: variables that do not coerce.
    return with_code(error, BAD_USER_INPUT)

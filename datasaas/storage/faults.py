"""Which exceptions mean "the database is unavailable right now" (retry later) rather than a bug.

A lost or refused connection, a pool with no free connection, a disk that is full, a database
that is locked past the busy timeout or shutting down: the request may well succeed a moment
later, so the front doors answer 503 with ``Retry-After``. Everything else stays a 500.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy import exc as sa_exc

# SQLSTATE classes and codes (PostgreSQL appendix A) that describe the server, not the query.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P", "58")
_UNAVAILABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014"})
# SQLite reports outages as OperationalError like it reports bad SQL; tell them by message.
_SQLITE_OUTAGES = (
    "database or disk is full",
    "database is locked",
    "disk i/o error",
    "unable to open database file",
    "attempt to write a readonly database",
)


def _chain(error: BaseException) -> list[BaseException]:
    """The error, what it wraps (``orig``) and what caused it, without loops."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
    return seen


def _one_is_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # pool exhausted (QueuePool timeout) or a connection invalidated
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return True  # includes refused/reset sockets and asyncio timeouts
    if isinstance(error, OSError) and error.errno is not None:
        return True  # connect() failures surface as OSError from the drivers
    if isinstance(error, asyncpg.PostgresConnectionError):
        return True  # the connection is gone (ConnectionDoesNotExistError and kin)
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
    ):
        return True
    if isinstance(error, sqlite3.OperationalError):
        message = str(error).lower()
        return any(outage in message for outage in _SQLITE_OUTAGES)
    return False


def is_unavailable(error: BaseException) -> bool:
    """Tell whether ``error`` (or anything it wraps) means the database is unavailable now."""
    return any(_one_is_unavailable(part) for part in _chain(error))


def describe_error(error: BaseException) -> str:
    """One line naming an error without its SQL or parameters (safe for logs)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".rstrip(": ")

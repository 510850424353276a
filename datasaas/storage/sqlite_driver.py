"""aiosqlite with one trip to the connection's thread per statement instead of three or four.

SQLAlchemy's aiosqlite adapter drives a statement as ``cursor()``, ``execute()``,
``fetchall()`` (when it returns rows) and ``close()``, and aiosqlite sends each to the
connection's worker thread and back: a thread hop, and a wait for the event loop's next turn,
each. Under write load those waits were most of a group commit's latency. The cursor here does
the whole statement in one call on the worker thread (create a ``sqlite3`` cursor, execute,
fetch every row, read ``description``/``rowcount``/``lastrowid``, close) and answers
``fetch*`` from what it brought back. ``sqlite3`` objects never leave their thread, the
statements and their order are unchanged, and errors are the same ``sqlite3`` exceptions.

SQLAlchemy always fetches every row of a non-streaming result at once, so prefetching changes no
result; nothing in the product streams results from SQLite (server-side cursors).
Plugged in with ``create_async_engine(url, async_creator=...)`` (see ``connector``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Snapshot = tuple[list[Any] | None, Any, int, int | None]
"""(rows or None, description, rowcount, lastrowid) of a finished statement."""


def _run(
    connection: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> _Snapshot:  # on the connection's thread
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description is not None else None
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses; each statement one trip."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self._description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def _statement(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        rows, self._description, self.rowcount, self.lastrowid = await self._connection.call(
            _run, self._connection.sqlite_connection, sql, parameters, many
        )
        self._rows = rows or []
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        """Run one statement and bring back all its rows."""
        return await self._statement(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        """Run one statement once per parameter set."""
        return await self._statement(sql, parameters, True)

    @property
    def description(self) -> Any:
        """The columns of the last statement's rows (None when it returned none)."""
        return self._description

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        """Up to ``size`` (``arraysize``) more rows."""
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> Sequence[Any]:
        """Every remaining row."""
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        """Drop the rows (the ``sqlite3`` cursor was closed on its thread already)."""
        self._rows = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class OneTripConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose cursors take one trip per statement."""

    @property
    def sqlite_connection(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection (to be used on the worker thread only)."""
        return self._conn

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` on the connection's thread."""
        return await self._execute(function, *args)  # type: ignore[no-untyped-call]

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        """A cursor, used as ``async with connection.cursor() as cursor`` (as SQLAlchemy
        does); nothing runs on the thread until it executes."""
        return OneTripCursor(self)

    async def execute(  # type: ignore[override]
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> OneTripCursor:
        """``cursor().execute(...)``, as ``aiosqlite.Connection.execute``."""
        return await self.cursor().execute(sql, parameters)

    async def executemany(  # type: ignore[override]
        self, sql: str, parameters: Iterable[Iterable[Any]]
    ) -> OneTripCursor:
        """``cursor().executemany(...)``, as ``aiosqlite.Connection.executemany``."""
        return await self.cursor().executemany(sql, parameters)


def connector(database: str, **connect_args: Any) -> Callable[[], Awaitable[OneTripConnection]]:
    """An ``async_creator`` for ``create_async_engine``: ``sqlite3.connect(database, **args)``
    on a worker thread of its own (aiosqlite's threading, daemonic like SQLAlchemy's)."""

    async def create() -> OneTripConnection:
        connection = OneTripConnection(
            lambda: sqlite3.connect(database, **connect_args), iter_chunk_size=64
        )
        connection._thread.daemon = True
        await connection  # starts the thread and connects
        return connection

    return create

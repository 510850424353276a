"""Async engine and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout. Read sessions begin
deferred transactions; write sessions begin ``IMMEDIATE`` so that concurrent writers queue on the
database lock instead of failing with "database is locked" when a deferred transaction tries to
upgrade from reading to writing. Within one process, SQLite writers also queue on an asyncio lock
first: SQLite's busy handler polls with growing sleeps (up to 100 ms each), so writers contending
inside the database wake late and in no order; queued on the lock, the next one starts the moment
the previous commits, first come first served. Other processes still meet the busy timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from datasaas.storage import ids, sqlite_driver
from datasaas.storage.activity import CACHE_KEY, ActivityCache
from datasaas.storage.group_commit import GroupCommit
from datasaas.storage.lookups import SharedLookups, find_keys, find_sites
from datasaas.storage.outbox import SIGNAL_KEY, OutboxSignal

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")
P = TypeVar("P")
_BEGIN_OPTION = "datasaas_sqlite_begin"


BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "datasaas_background", default=False
)
"""True in the process's own background work (the live hub, the webhook dispatcher), so that
instrumentation can tell a request's statements from the process's: tests that count a
request's SQL ignore these."""


def background_context() -> contextvars.Context:
    """A copy of the current context marked ``BACKGROUND``, for ``asyncio.create_task``."""
    context = contextvars.copy_context()
    context.run(BACKGROUND.set, True)
    return context


def is_sqlite(url: str) -> bool:
    """Tell whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself (pysqlite's own is deferred-only).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Connection pool sizing and timeouts (from ``Settings``; defaults suit one small worker)."""

    size: int = 5
    max_overflow: int = 10
    timeout: float = 10.0
    """Seconds a request waits for a free connection before it is answered 503."""
    connect_timeout: float = 5.0
    """Seconds to establish a PostgreSQL connection before giving up (503)."""
    statement_timeout: float = 30.0
    """Seconds a PostgreSQL statement may take (a silent network, a stuck lock) before 503."""


class Database:
    """The engine plus two session factories: deferred reads and serialised (immediate) writes.

    Errors never carry bound parameters (``hide_parameters``): logs hold no bitmaps or secrets.
    """

    def __init__(self, url: str, *, echo: bool = False, pool: PoolOptions | None = None) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        pool = pool or PoolOptions()
        kwargs: dict[str, Any] = {
            "echo": echo,
            "hide_parameters": True,
            "pool_pre_ping": not self.is_sqlite,
            "pool_size": pool.size,
            "max_overflow": pool.max_overflow,
            "pool_timeout": pool.timeout,
        }
        if self.is_sqlite:
            _ensure_sqlite_directory(url)
            # aiosqlite, one trip to its thread per statement (``sqlite_driver``), connected
            # with the arguments SQLAlchemy would derive from the URL.
            cargs, cparams = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
            kwargs["async_creator"] = sqlite_driver.connector(
                *cargs, **cparams, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
            )
            # Same ceiling, but every connection stays pooled: an overflow connection is closed
            # when returned, and opening one (a thread, four PRAGMAs) costs more than a request.
            kwargs["pool_size"] = pool.size + pool.max_overflow
            kwargs["max_overflow"] = 0
        else:
            kwargs["connect_args"] = {
                "timeout": pool.connect_timeout,
                "command_timeout": pool.statement_timeout,
            }
        self.engine = create_async_engine(url, **kwargs)
        if not self.is_sqlite:
            # An executemany INSERT becomes multi-row INSERTs of up to 1,000 rows (SQLAlchemy's
            # "insertmanyvalues", which PostgreSQL dialects use only with RETURNING by default):
            # asyncpg's executemany runs the statement once per row on the server, and a batch
            # of tracker events (visitors, pageviews, slots, presence) paid that per row.
            self.engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
        write_engine = self.engine
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
            write_engine = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self.activity_cache = ActivityCache(self.write)
        self.outbox_signal = OutboxSignal()
        self.ids = ids.IdCache()
        info = {
            CACHE_KEY: self.activity_cache,
            SIGNAL_KEY: self.outbox_signal,
            ids.CACHE_KEY: self.ids,
        }
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._writer = async_sessionmaker(write_engine, expire_on_commit=False, info=info)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self.group_commit = GroupCommit(self.write)
        self.keys = SharedLookups(self.read, find_keys)
        self.sites = SharedLookups(self.read, find_sites)

    async def submit(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run a write in the next group commit (see ``group_commit``): in a savepoint of a
        transaction shared with the writes waiting beside it, answered once that committed."""
        return await self.group_commit.submit(work)

    def arriving(self) -> AbstractContextManager[None]:
        """Announce a write on its way to ``submit`` (see ``GroupCommit.arriving``)."""
        return self.group_commit.arriving()

    async def submit_batched(
        self, batch: Callable[[AsyncSession, Sequence[P]], Awaitable[Sequence[T]]], payload: P
    ) -> T:
        """Like ``submit``, written set-based with the same ``batch``'s other waiting payloads."""
        return await self.group_commit.submit_batched(batch, payload)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """Yield a session for reads; its transaction is rolled back at the end."""
        async with self._reader() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Yield a session in a write transaction: committed on success, rolled back on error."""
        if self._write_lock is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        # As long as the busy timeout: a writer that cannot start by then is answered 503.
        async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
            await self._write_lock.acquire()
        try:
            async with self._writer() as session, session.begin():
                yield session
        finally:
            self._write_lock.release()

    async def dispose(self) -> None:
        """Finish queued writes and pending cache writes, then close every pooled connection."""
        await self.group_commit.stop()
        await self.activity_cache.drain()
        await self.engine.dispose()

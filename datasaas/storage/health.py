"""Readiness checks: the database answers a read, accepts (and commits) a write, and, for SQLite,
its disk has room.

The disk check is there because a tiny write can still commit on a full disk (SQLite reuses the
pages of its write-ahead log) while every real write fails: free space below
``MIN_FREE_BYTES`` is reported before that happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url

from datasaas.storage.engine import Database
from datasaas.storage.faults import describe_error
from datasaas.storage.models import HealthCheck
from datasaas.storage.sql import dialect_insert

CHECK_TIMEOUT_SECONDS = 3.0
MIN_FREE_BYTES = 4 * 1024 * 1024
_PROBE_NAME = f"{socket.gethostname()}:{os.getpid()}"[:64]


async def _read(database: Database) -> None:
    async with database.read() as session:
        await session.execute(text("SELECT 1"))


async def _write(database: Database) -> None:
    # One row per process, upserted and committed: a full disk or a read-only database fails it.
    async with database.write() as session:
        now = datetime.now(UTC)
        upsert = dialect_insert(session)(HealthCheck).values(name=_PROBE_NAME, checked_at=now)
        await session.execute(
            upsert.on_conflict_do_update(index_elements=["name"], set_={"checked_at": now})
        )


async def _disk(database: Database) -> None:
    path = make_url(database.url).database
    if not database.is_sqlite or not path or path == ":memory:" or path.startswith("file:"):
        return
    free = await asyncio.to_thread(shutil.disk_usage, os.path.dirname(os.path.abspath(path)))
    if free.free < MIN_FREE_BYTES:
        raise OSError(
            f"{free.free // 1024} KiB free on the database's disk, "
            f"under {MIN_FREE_BYTES // (1024 * 1024)} MiB"
        )


async def readiness(database: Database) -> dict[str, str]:
    """Each check's outcome: ``"ok"`` or ``"failed: <reason>"``; each check runs only after the
    previous one succeeded, each within ``CHECK_TIMEOUT_SECONDS``."""
    checks: dict[str, str] = {}
    # The disk check comes before the write: on a full disk the write may fail (or, reusing WAL
    # pages, succeed), and the answer should name the disk either way.
    steps = [("database", _read)]
    if database.is_sqlite:
        steps.append(("disk", _disk))
    steps.append(("write", _write))
    for name, check in steps:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await check(database)
        except TimeoutError:
            checks[name] = f"failed: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
            break
        except Exception as exc:  # any driver error means "not ready"
            checks[name] = f"failed: {describe_error(exc)}"
            break
        checks[name] = "ok"
    return checks

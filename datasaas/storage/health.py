"""Readiness checks: the database answers a read, and accepts (and commits) a write."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime

from sqlalchemy import text

from datasaas.storage.engine import Database
from datasaas.storage.faults import describe_error
from datasaas.storage.models import HealthCheck
from datasaas.storage.sql import dialect_insert

CHECK_TIMEOUT_SECONDS = 3.0
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


async def readiness(database: Database) -> dict[str, str]:
    """Each check's outcome: ``"ok"`` or ``"failed: <reason>"``; the write is tried only after
    the read succeeded, each within ``CHECK_TIMEOUT_SECONDS``."""
    checks: dict[str, str] = {}
    for name, check in (("database", _read), ("write", _write)):
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

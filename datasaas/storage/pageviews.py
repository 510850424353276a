"""Queries for tracked pageviews: written in bulk, with the activity slots and hour versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.storage.activity import touch_hour
from datasaas.storage.models import Pageview
from datasaas.storage.sql import slot_of
from datasaas.storage.visitors import insert_slots

# Bounded statement sizes: SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535.
_CHUNK: Final = 500


async def insert_pageviews(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many pageviews (each row: the ``pageview`` columns) and mark their visitors active."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        await session.execute(insert(Pageview), list(chunk))
    # Backdated activity: cached bitmaps of those hours must be rebuilt (one bump per hour).
    for row in rows:
        await touch_hour(session, site_id=row["site_id"], at=row["occurred_at"])
    slots = {(row["site_id"], slot_of(row["occurred_at"]), row["visitor_id"]) for row in rows}
    ordered = sorted(slots)
    for start in range(0, len(ordered), _CHUNK):
        slot_chunk = ordered[start : start + _CHUNK]
        await session.execute(
            insert_slots(
                session,
                [{"site_id": s, "slot": slot, "visitor_id": v} for s, slot, v in slot_chunk],
            )
        )

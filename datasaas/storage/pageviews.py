"""Queries for tracked pageviews: written in bulk, with the activity slots and hour versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.storage.models import Pageview
from datasaas.storage.sql import core_rows, core_table, insert_many
from datasaas.storage.visitors import mark_many_active

# Bounded statement sizes: SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535.
_CHUNK: Final = 500


async def insert_pageviews(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many pageviews (each row: the ``pageview`` columns) and mark their visitors active."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        await insert_many(session, core_table(Pageview), core_rows(Pageview, chunk))
    # Backdated activity bumps its hours once each; the slots go in one insert per chunk.
    await mark_many_active(
        session, [(row["site_id"], row["visitor_id"], row["occurred_at"]) for row in rows]
    )

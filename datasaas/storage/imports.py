"""Bulk imports: many visitors (first touch already known) and pageviews in bounded statements.

Used by the demo generator through ``datasaas.resolvers.imports``; single tracked pageviews are
in ``storage.pageviews``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage import ids
from datasaas.storage.models import Visitor
from datasaas.storage.sql import insert_many_ignoring_conflicts
from datasaas.storage.visitors import find_by_uid

# Bounded statement sizes: SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535.
_CHUNK = 500


def _chunks(rows: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def insert_visitors(
    session: AsyncSession, *, site_id: str, rows: Sequence[dict[str, Any]]
) -> dict[str, int]:
    """Insert visitors with their first-touch columns already set; return ``uid -> key``.

    Each row holds ``uid``, ``first_seen_at`` and any first-touch column of ``visitor``.
    Visitors that already exist are left untouched (their first touch stays first).
    """
    keys: dict[str, int] = {}
    for chunk in _chunks(rows):
        await insert_many_ignoring_conflicts(
            session, Visitor, [{**row, "site_id": site_id} for row in chunk]
        )
        uids = [row["uid"] for row in chunk]
        found = await find_by_uid(session, site_id=site_id, uids=uids)
        keys.update({uid: key for uid, key, _ in found})
    ids.remember(session, {("visitor", site_id, uid): key for uid, key in keys.items()})
    return keys


async def existing_uids(session: AsyncSession, *, site_id: str, uids: Sequence[str]) -> int:
    """Count how many of ``uids`` are already visitors of the site."""
    total = 0
    for chunk in _chunks(uids):
        found = await session.scalar(
            select(func.count(literal_column("*")))
            .select_from(Visitor)
            .where(col(Visitor.site_id) == site_id, col(Visitor.uid).in_(chunk))
        )
        total += int(found or 0)
    return total

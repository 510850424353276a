"""Queries on visitors and their activity slots (the source of every "visitors" count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import (
    SLOT_SECONDS,
    GoalCompletion,
    Pageview,
    Payment,
    Visitor,
    VisitorSlot,
)
from datasaas.storage.sql import insert_ignore, slot_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def visitor_key(session: AsyncSession, *, site_id: str, uid: str, seen_at: datetime) -> int:
    """Return the integer key of a visitor, creating the visitor on first sight."""
    found = await session.scalar(
        select(col(Visitor.id)).where(col(Visitor.site_id) == site_id, col(Visitor.uid) == uid)
    )
    if found is not None:
        return int(found)
    await session.execute(
        insert_ignore(session, Visitor, {"site_id": site_id, "uid": uid, "first_seen_at": seen_at})
    )
    key = await session.scalar(
        select(col(Visitor.id)).where(col(Visitor.site_id) == site_id, col(Visitor.uid) == uid)
    )
    assert key is not None
    return int(key)


async def get_visitor(session: AsyncSession, *, site_id: str, uid: str) -> Visitor | None:
    """Return a visitor by its client id, or None."""
    result = await session.execute(
        select(Visitor).where(col(Visitor.site_id) == site_id, col(Visitor.uid) == uid)
    )
    return result.scalar_one_or_none()


async def set_first_touch(
    session: AsyncSession, *, visitor_id: int, at: datetime, **attributes: Any
) -> bool:
    """Record first-touch attributes unless the visitor already has a first pageview."""
    result = await session.execute(
        update(Visitor)
        .where(col(Visitor.id) == visitor_id, col(Visitor.first_pageview_at).is_(None))
        .values(first_pageview_at=at, **attributes)
    )
    return bool(getattr(result, "rowcount", 0))


async def mark_active(
    session: AsyncSession, *, site_id: str, visitor_id: int, at: datetime
) -> None:
    """Record that a visitor was active in the 15-minute slot containing ``at``."""
    await session.execute(
        insert_ignore(
            session,
            VisitorSlot,
            {"site_id": site_id, "slot": slot_of(at), "visitor_id": visitor_id},
        )
    )


def _slot_plan(start: datetime, end: datetime) -> tuple[int, int, list[tuple[datetime, datetime]]]:
    """Split [start, end] into whole slots [first, stop) and half-open raw-row edge intervals."""
    end_exclusive = end + timedelta(microseconds=1)
    width = SLOT_SECONDS * 1_000_000
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    end_us = (end_exclusive - _EPOCH) // timedelta(microseconds=1)
    first, stop = -(-start_us // width), end_us // width
    if stop <= first:
        return first, first, [(start, end_exclusive)]
    edges = []
    if start_us < first * width:
        edges.append((start, _EPOCH + timedelta(microseconds=first * width)))
    if stop * width < end_us:
        edges.append((_EPOCH + timedelta(microseconds=stop * width), end_exclusive))
    return first, stop, edges


async def count_visitors(
    session: AsyncSession, *, site_id: str, start: datetime, end: datetime
) -> int:
    """Exact number of distinct visitors with any activity in [start, end].

    Whole 15-minute slots come from ``visitor_slot``; the ragged edges of a range that does not
    start or end on a slot boundary are read from the raw event tables.
    """
    first, stop, edges = _slot_plan(start, end)
    parts: list[Any] = []
    if stop > first:
        parts.append(
            select(col(VisitorSlot.visitor_id)).where(
                col(VisitorSlot.site_id) == site_id,
                col(VisitorSlot.slot) >= first,
                col(VisitorSlot.slot) < stop,
            )
        )
    for visitor, site, column in (
        (col(Pageview.visitor_id), col(Pageview.site_id), col(Pageview.occurred_at)),
        (
            col(GoalCompletion.visitor_id),
            col(GoalCompletion.site_id),
            col(GoalCompletion.completed_at),
        ),
        (col(Payment.visitor_id), col(Payment.site_id), col(Payment.paid_at)),
    ):
        if edges:
            in_edges = or_(*((column >= a) & (column < b) for a, b in edges))
            parts.append(select(visitor).where(site == site_id, in_edges))
    subquery = union(*parts).subquery() if len(parts) > 1 else parts[0].distinct().subquery()
    total = await session.scalar(select(func.count(literal_column("*"))).select_from(subquery))
    return int(total or 0)


async def get_visitor_by_key(session: AsyncSession, visitor_id: int) -> str:
    """Return the client id of a visitor by its integer key."""
    uid = await session.scalar(select(col(Visitor.uid)).where(col(Visitor.id) == visitor_id))
    assert uid is not None
    return str(uid)

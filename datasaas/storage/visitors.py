"""Queries on visitors: identity (string id to integer key), first touch, activity slots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.activity import touch_hour
from datasaas.storage.models import GoalCompletion, Pageview, Payment, Visitor, VisitorSlot
from datasaas.storage.sql import insert_ignore, slot_of


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
    await touch_hour(session, site_id=site_id, at=at)
    await session.execute(
        insert_ignore(
            session,
            VisitorSlot,
            {"site_id": site_id, "slot": slot_of(at), "visitor_id": visitor_id},
        )
    )


async def get_visitor_by_key(session: AsyncSession, visitor_id: int) -> str:
    """Return the client id of a visitor by its integer key."""
    uid = await session.scalar(select(col(Visitor.uid)).where(col(Visitor.id) == visitor_id))
    assert uid is not None
    return str(uid)


async def activity_span(session: AsyncSession, *, site_id: str) -> tuple[datetime, datetime] | None:
    """The first and last instants of any pageview, completion or payment of the site."""
    bounds = []
    for table, at in (
        (Pageview, col(Pageview.occurred_at)),
        (GoalCompletion, col(GoalCompletion.completed_at)),
        (Payment, col(Payment.paid_at)),
    ):
        site = col(table.site_id) == site_id
        bounds += [
            select(func.min(at)).where(site).scalar_subquery(),
            select(func.max(at)).where(site).scalar_subquery(),
        ]
    row = (await session.execute(select(*bounds))).one()
    lows = [_aware(at) for at in row[0::2] if at is not None]
    highs = [_aware(at) for at in row[1::2] if at is not None]
    return (min(lows), max(highs)) if lows and highs else None


def _aware(at: datetime | str) -> datetime:
    # Scalar subqueries lose the column type on SQLite: parse the stored text there.
    instant = datetime.fromisoformat(at) if isinstance(at, str) else at
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

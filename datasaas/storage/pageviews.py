"""Queries for tracked pageviews."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.storage.models import Pageview


async def insert_pageview(
    session: AsyncSession,
    *,
    site_id: str,
    visitor_id: int,
    session_id: str,
    occurred_at: datetime,
    url: str | None,
    hostname: str | None,
    pathname: str | None,
    referrer: str | None,
    title: str | None,
) -> None:
    """Insert one pageview."""
    await session.execute(
        insert(Pageview).values(
            site_id=site_id,
            visitor_id=visitor_id,
            session_id=session_id,
            occurred_at=occurred_at,
            url=url,
            hostname=hostname,
            pathname=pathname,
            referrer=referrer,
            title=title,
        )
    )

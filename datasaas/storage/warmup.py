"""Warm-up of the derived caches, so that no request pays for building them (no cold wall).

Activity bitmaps (``activity_bitmap``) and revenue rollups (``revenue_rollup``) are otherwise
built on the first read of a range, which after a bulk import or a demo run costs seconds.
``warm_site`` builds every finished UTC day (and its hours) a site has data for, a week at a
time, on read sessions of its own, storing through the database's ``ActivityCache`` and
draining it between weeks (bounded memory, one writer). It is what the import paths call once
their transaction committed, and what the app runs in the background at start for every site
(``warm_all``). Periods already cached at their current version are only looked at (versions
and period numbers, no bitmaps), so a warm-up of a warm database costs a few small statements.

Filtered reads have two more per-process structures, and the warm-up prepares both: the
completion levels of every finished day (``storage.levels``, built and stored in
``completion_level`` with the days' other caches, loaded into memory at start) and every filter
dimension's per-value visitor bitmaps (``storage.dimensions``, snapshots loaded, or built and
stored when missing). After an import or a start, a worker's first filtered read then reads
neither the range's completions nor every visitor.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from datasaas.filters import Dimension
from datasaas.periods import CACHE_GRACE, DAY, HOUR, day_of, instant_of, runs, seconds_of
from datasaas.storage import activity, dimensions, levels, revenue_rollups
from datasaas.storage.engine import Database
from datasaas.storage.faults import describe_error
from datasaas.storage.models import (
    ActivityBitmap,
    CompletionLevel,
    GoalCompletion,
    Pageview,
    Payment,
    RevenueRollup,
    Site,
)

logger = logging.getLogger("datasaas")

WEEK = 7
"""Days built per read session (and drained before the next)."""


async def _first_event(
    database: Database, site_id: str, after: datetime | None = None
) -> datetime | None:
    """The site's first pageview, completion or payment (at or after ``after``)."""
    async with database.read() as session:
        firsts = [
            await session.scalar(
                select(func.min(column)).where(
                    site == site_id, *([] if after is None else [column >= after])
                )
            )
            for column, site in (
                (col(Pageview.occurred_at), col(Pageview.site_id)),
                (col(GoalCompletion.completed_at), col(GoalCompletion.site_id)),
                (col(Payment.paid_at), col(Payment.site_id)),
            )
        ]
    found = [first for first in firsts if first is not None]
    return min(found) if found else None


async def _stale(database: Database, site_id: str, span: int, periods: list[int]) -> list[int]:
    """Periods whose bitmaps, rollups or completion levels are missing or older than their hour
    versions."""
    async with database.read() as session:
        versions = await activity.period_versions(
            session, site_id=site_id, span=span, periods=periods
        )
        fresh: dict[str, set[int]] = {}
        tables: tuple[tuple[str, Any], ...] = (
            ("bitmaps", ActivityBitmap),
            ("rollups", RevenueRollup),
            ("levels", CompletionLevel),
        )
        for name, table in tables:
            query = select(col(table.period), col(table.version)).where(
                col(table.site_id) == site_id,
                col(table.span) == span,
                col(table.period) >= periods[0],
                col(table.period) <= periods[-1],
            )
            if table is ActivityBitmap:
                query = query.where(col(ActivityBitmap.goal_id) == activity.ANY_ACTIVITY)
            elif table is RevenueRollup:  # one cached before migration 0010 lacks its amounts
                query = query.where(col(RevenueRollup.payer_amounts).is_not(None))
            rows = (await session.execute(query)).all()
            fresh[name] = {period for period, version in rows if versions.get(period) == version}
    return [p for p in periods if any(p not in fresh[name] for name in fresh)]


async def _build(database: Database, site_id: str, span: int, periods: list[int]) -> None:
    async with database.read() as session:
        await activity.build_periods(session, site_id=site_id, span=span, periods=periods)
        await revenue_rollups.build_periods(session, site_id=site_id, span=span, periods=periods)
        await levels.build_periods(session, site_id=site_id, span=span, periods=periods)
    await database.activity_cache.drain()


async def _warm_dimensions(database: Database, site_id: str) -> None:
    """Load the site's stored completion levels into memory, and load (or build and store) the
    visitor bitmaps of every filter dimension."""
    async with database.read() as session:
        await levels.load(session, site_id=site_id)
        for dimension in Dimension:
            await dimensions.warm_index(session, site_id=site_id, dimension=dimension.value)
    await database.activity_cache.drain()


async def warm_site(database: Database, *, site_id: str, now: datetime | None = None) -> int:
    """Build the missing or stale cached days and hours of a site, and its dimensions' visitor
    bitmaps; the periods built."""
    moment = now or datetime.now(UTC)
    first = await _first_event(database, site_id)
    if first is None:
        return 0
    built = await _warm_periods(database, site_id, first, moment)
    await _warm_dimensions(database, site_id)
    return built


async def _warm_periods(database: Database, site_id: str, first: datetime, moment: datetime) -> int:
    """Build the missing or stale cached days (and today's finished hours) since ``first``."""
    limit = seconds_of(moment - CACHE_GRACE)
    last_day = limit // DAY
    built = 0
    day = day_of(first)
    while day < last_day:
        week = list(range(day, min(day + WEEK, last_day)))
        stale = await _stale(database, site_id, DAY, week)
        for first_day, stop in runs(stale):
            await _build(database, site_id, DAY, list(range(first_day, stop)))
        built += len(stale)
        # Jump over stretches without any event (a site with one event in year 2 stays cheap).
        following = await _first_event(database, site_id, after=instant_of((day + WEEK) * DAY))
        if following is None:
            break
        day = max(day + WEEK, day_of(following))
    # The finished hours of the day still under way: what reads of "today" use.
    hours = list(range(max(limit // DAY * 24, seconds_of(first) // HOUR), limit // HOUR))
    if hours:
        stale = await _stale(database, site_id, HOUR, hours)
        if stale:
            await _build(database, site_id, HOUR, stale)
        built += len(stale)
    return built


async def warm_all(database: Database) -> None:
    """Warm every site's derived caches (the app's background task at start); never raises."""
    try:
        async with database.read() as session:
            site_ids = list((await session.execute(select(col(Site.id)))).scalars())
        for site_id in site_ids:
            built = await warm_site(database, site_id=site_id)
            if built:
                logger.info("built %s cached periods for %s at start", built, site_id)
    except Exception as exc:  # derived data: a failed warm-up only costs the first reads time
        logger.warning("could not warm the derived caches: %s", describe_error(exc))

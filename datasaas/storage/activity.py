"""Who was active when: exact distinct-visitor sets over any time range, fast.

A range is split into whole finished UTC days and raw windows (its ragged start, its end, and the
last hour-plus that may still be receiving events). Whole days come from ``day_bitmap``: roaring
bitmaps of visitor keys per (site, day, goal), built from the raw tables on first read and rebuilt
when a backdated write has bumped ``day_version``. Raw windows come from ``visitor_slot`` (whole
15-minute slots) and the event tables (the part of a slot a range cuts). Every count is exact.

Why the rebuild is safe without locks: a reader reads the day versions *before* the raw rows it
builds from, so any write committed after that read has bumped the version and the stored bitmap
is stale-marked from birth. Writes to the current UTC day never bump; days are only cached once
they ended more than ``CACHE_GRACE`` ago, longer than any write transaction lives.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyroaring import BitMap
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import (
    SLOT_SECONDS,
    DayBitmap,
    DayVersion,
    GoalCompletion,
    Pageview,
    Payment,
    VisitorSlot,
)
from datasaas.storage.sql import dialect_insert, epoch_seconds

logger = logging.getLogger("datasaas")

DAY_SECONDS = 86_400
SLOTS_PER_DAY = DAY_SECONDS // SLOT_SECONDS
ANY_ACTIVITY = 0
CACHE_GRACE = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_BUMPED = "datasaas_bumped_days"

Window = tuple[datetime, datetime]


@dataclass(slots=True)
class GoalActivity:
    """Per goal: the visitors who completed it and how many completions, in a range."""

    visitors: dict[int, BitMap] = field(default_factory=dict)
    completions: dict[int, int] = field(default_factory=dict)

    def add(self, goal_id: int, visitors: Iterable[int], completions: int) -> None:
        """Merge more visitors and completions of a goal."""
        self.visitors.setdefault(goal_id, BitMap()).update(visitors)
        self.completions[goal_id] = self.completions.get(goal_id, 0) + completions


def day_of(at: datetime) -> int:
    """The UTC day number (days since 1970-01-01) of an instant."""
    return (at - _EPOCH) // timedelta(days=1)


def _day_start(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)


def split_range(start: datetime, end: datetime, now: datetime) -> tuple[list[int], list[Window]]:
    """Split [start, end] into cacheable whole UTC days and half-open raw windows."""
    end_exclusive = end + _US
    first = -(-(start - _EPOCH) // timedelta(days=1))
    stop = min(day_of(end_exclusive), day_of(now - CACHE_GRACE))
    if stop <= first:
        return [], [(start, end_exclusive)]
    windows: list[Window] = []
    if start < _day_start(first):
        windows.append((start, _day_start(first)))
    if _day_start(stop) < end_exclusive:
        windows.append((_day_start(stop), end_exclusive))
    return list(range(first, stop)), windows


async def touch_day(session: AsyncSession, *, site_id: str, at: datetime) -> None:
    """Mark the cached bitmaps of ``at``'s UTC day stale when that day is already over."""
    day = day_of(at)
    if day >= day_of(datetime.now(UTC)):
        return
    bumped: set[tuple[str, int]] = session.info.setdefault(_BUMPED, set())
    if (site_id, day) in bumped:
        return
    upsert = (
        dialect_insert(session)(DayVersion)
        .values(site_id=site_id, day=day, version=1)
        .on_conflict_do_update(
            index_elements=["site_id", "day"], set_={"version": col(DayVersion.version) + 1}
        )
    )
    await session.execute(upsert)
    bumped.add((site_id, day))


# -- raw windows -------------------------------------------------------------------------------


def _slot_plan(window: Window) -> tuple[int, int, list[Window]]:
    """Whole 15-minute slots [first, stop) inside a half-open window, and the leftover edges."""
    start, end = window
    width = SLOT_SECONDS * 1_000_000
    start_us, end_us = (start - _EPOCH) // _US, (end - _EPOCH) // _US
    first, stop = -(-start_us // width), end_us // width
    if stop <= first:
        return first, first, [window]
    edges: list[Window] = []
    if start_us < first * width:
        edges.append((start, _EPOCH + timedelta(microseconds=first * width)))
    if stop * width < end_us:
        edges.append((_EPOCH + timedelta(microseconds=stop * width), end))
    return first, stop, edges


async def _raw_activity(session: AsyncSession, site_id: str, windows: Sequence[Window]) -> BitMap:
    visitors = BitMap()
    edges: list[Window] = []
    slot_ranges = []
    for window in windows:
        first, stop, window_edges = _slot_plan(window)
        edges.extend(window_edges)
        if stop > first:
            slot_ranges.append(and_(col(VisitorSlot.slot) >= first, col(VisitorSlot.slot) < stop))
    if slot_ranges:
        rows = await session.execute(
            select(col(VisitorSlot.visitor_id)).where(
                col(VisitorSlot.site_id) == site_id, or_(*slot_ranges)
            )
        )
        visitors.update(rows.scalars())
    if edges:
        for visitor, site, column in (
            (col(Pageview.visitor_id), col(Pageview.site_id), col(Pageview.occurred_at)),
            (
                col(GoalCompletion.visitor_id),
                col(GoalCompletion.site_id),
                col(GoalCompletion.completed_at),
            ),
            (col(Payment.visitor_id), col(Payment.site_id), col(Payment.paid_at)),
        ):
            in_edges = or_(*((column >= a) & (column < b) for a, b in edges))
            rows = await session.execute(select(visitor).where(site == site_id, in_edges))
            visitors.update(rows.scalars())
    return visitors


async def _raw_goals(
    session: AsyncSession, site_id: str, windows: Sequence[Window], goal_ids: set[int] | None
) -> GoalActivity:
    activity = GoalActivity()
    if not windows:
        return activity
    at = col(GoalCompletion.completed_at)
    query = select(col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
        col(GoalCompletion.site_id) == site_id, or_(*((at >= a) & (at < b) for a, b in windows))
    )
    if goal_ids is not None:
        query = query.where(col(GoalCompletion.goal_id).in_(goal_ids))
    grouped: dict[int, list[int]] = defaultdict(list)
    for goal_id, visitor_id in (await session.execute(query)).all():
        grouped[goal_id].append(visitor_id)
    for goal_id, visitors in grouped.items():
        activity.add(goal_id, visitors, len(visitors))
    return activity


# -- cached days -------------------------------------------------------------------------------


def _runs(days: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted day numbers as [first, stop)."""
    runs: list[tuple[int, int]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + 1)
        else:
            runs.append((day, day + 1))
    return runs


async def _build_days(
    session: AsyncSession, site_id: str, days: Sequence[int]
) -> dict[tuple[int, int], tuple[BitMap, int]]:
    """Bitmaps (and completion counts) per (day, goal) computed from the raw tables."""
    built: dict[tuple[int, int], tuple[BitMap, int]] = {
        (d, ANY_ACTIVITY): (BitMap(), 0) for d in days
    }
    slot = col(VisitorSlot.slot)
    at = col(GoalCompletion.completed_at)
    day_expr = epoch_seconds(session, at) // DAY_SECONDS
    for first, stop in _runs(days):
        rows = await session.execute(
            select(slot, col(VisitorSlot.visitor_id)).where(
                col(VisitorSlot.site_id) == site_id,
                slot >= first * SLOTS_PER_DAY,
                slot < stop * SLOTS_PER_DAY,
            )
        )
        for slot_number, visitor in rows.all():
            built[(slot_number // SLOTS_PER_DAY, ANY_ACTIVITY)][0].add(visitor)
        completions = await session.execute(
            select(day_expr, col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
                col(GoalCompletion.site_id) == site_id,
                at >= _day_start(first),
                at < _day_start(stop),
            )
        )
        for day, goal_id, visitor in completions.all():
            bitmap, count = built.setdefault((int(day), goal_id), (BitMap(), 0))
            bitmap.add(visitor)
            built[(int(day), goal_id)] = (bitmap, count + 1)
    return built


async def _store_days(
    session: AsyncSession,
    site_id: str,
    built: dict[tuple[int, int], tuple[BitMap, int]],
    versions: dict[int, int],
) -> None:
    """Persist freshly built bitmaps in a transaction of their own; a failure only costs speed."""
    days = sorted({day for day, _ in built})
    try:
        async with AsyncSession(session.bind) as writer, writer.begin():
            await writer.execute(
                delete(DayBitmap).where(
                    col(DayBitmap.site_id) == site_id, col(DayBitmap.day).in_(days)
                )
            )
            writer.add_all(
                DayBitmap(
                    site_id=site_id,
                    day=day,
                    goal_id=goal_id,
                    version=versions.get(day, 0),
                    events=count,
                    visitors=bitmap.serialize(),
                )
                for (day, goal_id), (bitmap, count) in built.items()
            )
    except SQLAlchemyError as exc:
        logger.warning("could not cache day bitmaps for %s: %s", site_id, exc)


async def _cached_days(
    session: AsyncSession, site_id: str, days: Sequence[int], goal_ids: set[int] | None
) -> dict[tuple[int, int], tuple[BitMap, int]]:
    """Bitmaps per (day, goal) of whole days: cached, or rebuilt when missing or stale."""
    if not days:
        return {}
    first, last = days[0], days[-1]
    # Versions first, then data: see the module docstring.
    version_rows = await session.execute(
        select(col(DayVersion.day), col(DayVersion.version)).where(
            col(DayVersion.site_id) == site_id,
            col(DayVersion.day) >= first,
            col(DayVersion.day) <= last,
        )
    )
    versions = {int(day): int(version) for day, version in version_rows.all()}
    query = select(
        col(DayBitmap.day),
        col(DayBitmap.goal_id),
        col(DayBitmap.version),
        col(DayBitmap.events),
        col(DayBitmap.visitors),
    ).where(
        col(DayBitmap.site_id) == site_id, col(DayBitmap.day) >= first, col(DayBitmap.day) <= last
    )
    if goal_ids is not None:
        query = query.where(col(DayBitmap.goal_id).in_({ANY_ACTIVITY, *goal_ids}))
    result: dict[tuple[int, int], tuple[BitMap, int]] = {}
    fresh: set[int] = set()
    for day, goal_id, version, events, blob in (await session.execute(query)).all():
        if version == versions.get(day, 0):
            result[(day, goal_id)] = (BitMap.deserialize(blob), events)
            if goal_id == ANY_ACTIVITY:
                fresh.add(day)
    stale = [day for day in days if day not in fresh]
    if stale:
        result = {key: value for key, value in result.items() if key[0] in fresh}
        built = await _build_days(session, site_id, stale)
        await _store_days(session, site_id, built, versions)
        result.update(
            (key, value)
            for key, value in built.items()
            if goal_ids is None or key[1] in goal_ids or key[1] == ANY_ACTIVITY
        )
    return result


# -- public reads ------------------------------------------------------------------------------


async def active_visitors(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> BitMap:
    """The visitor keys with any pageview, completion or payment in [start, end]."""
    days, windows = split_range(start, end, now or datetime.now(UTC))
    cached = await _cached_days(session, site_id, days, goal_ids=set())
    visitors = (
        BitMap.union(*(bitmap for (_, goal), (bitmap, _) in cached.items() if goal == ANY_ACTIVITY))
        if cached
        else BitMap()
    )
    if windows:
        visitors |= await _raw_activity(session, site_id, windows)
    return visitors


async def count_visitors(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> int:
    """Exact number of distinct visitors with any activity in [start, end]."""
    return len(await active_visitors(session, site_id=site_id, start=start, end=end, now=now))


async def goal_activity(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    goal_ids: set[int] | None = None,
    now: datetime | None = None,
) -> GoalActivity:
    """Per goal (all, or ``goal_ids``): distinct completing visitors and completions in range."""
    days, windows = split_range(start, end, now or datetime.now(UTC))
    activity = GoalActivity()
    for (_, goal_id), (bitmap, events) in (
        await _cached_days(session, site_id, days, goal_ids)
    ).items():
        if goal_id != ANY_ACTIVITY:
            activity.visitors.setdefault(goal_id, BitMap()).update(bitmap)
            activity.completions[goal_id] = activity.completions.get(goal_id, 0) + events
    raw = await _raw_goals(session, site_id, windows, goal_ids)
    for goal_id, visitors in raw.visitors.items():
        activity.add(goal_id, visitors, raw.completions[goal_id])
    return activity

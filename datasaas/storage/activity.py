"""Who was active when: exact distinct-visitor sets over any time range, fast.

A range is split into whole finished UTC days, then whole finished UTC hours, then raw windows
(the sub-hour ragged edges and the last hour or two, which may still receive events). Days and
hours come from ``activity_bitmap``: roaring bitmaps of visitor keys per (site, period, goal).
An hour is built from the raw tables, a day as the union of its 24 hours, on first read; a
backdated write bumps the ``hour_version`` of its hour, so only that hour is rebuilt from raw rows
and its day re-unioned. Raw windows come from ``visitor_slot`` (whole 15-minute slots) and the
event tables (the part of a slot a range cuts). Every count is exact.

Rebuilt periods are stored by the database's :class:`ActivityCache`: in the background, on a
write session of their own, after the request answered from what it built on its own connection;
requests needing the same stale periods share one build.

Why the rebuild is safe without locks: a reader reads the versions *before* the data it builds
from, so any write committed after that read has bumped the version and the stored bitmap
is stale-marked from birth. Writes to the current UTC hour never bump; periods are only cached
once they ended more than ``CACHE_GRACE`` ago, longer than any write transaction lives.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pyroaring import BitMap
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.periods import (
    DAY,
    HOUR,
    SLOT_SECONDS,
    Plan,
    Window,
    instant_of,
    plan_range,
    runs,
    seconds_of,
    slot_plan,
)
from datasaas.storage.faults import describe_error
from datasaas.storage.models import (
    ActivityBitmap,
    GoalCompletion,
    HourVersion,
    Pageview,
    Payment,
    VisitorSlot,
)
from datasaas.storage.sql import core_table, dialect_insert, epoch_seconds, insert_many

logger = logging.getLogger("datasaas")

ANY_ACTIVITY = 0
_BUMPED = "datasaas_bumped_hours"

T = TypeVar("T")

Cached = dict[tuple[int, int], tuple[BitMap, int]]
"""(period, goal_id) -> (visitor bitmap, completions)"""


@dataclass(slots=True)
class GoalActivity:
    """Per goal: the visitors who completed it and how many completions, in a range."""

    visitors: dict[int, BitMap] = field(default_factory=dict)
    completions: dict[int, int] = field(default_factory=dict)

    def add(self, goal_id: int, visitors: Iterable[int], completions: int) -> None:
        """Merge more visitors and completions of a goal."""
        self.visitors.setdefault(goal_id, BitMap()).update(visitors)
        self.completions[goal_id] = self.completions.get(goal_id, 0) + completions


# -- raw windows -------------------------------------------------------------------------------


async def touch_hour(session: AsyncSession, *, site_id: str, at: datetime) -> None:
    """Mark the cached bitmaps of ``at``'s UTC hour (and day) stale when that hour is over."""
    await touch_hours(session, [(site_id, at)])


async def touch_hours(session: AsyncSession, activity: Iterable[tuple[str, datetime]]) -> None:
    """``touch_hour`` of many (site, instant) pairs: every finished hour they reach is bumped
    once per transaction, all in one statement (``sql.insert_many``)."""
    current = seconds_of(datetime.now(UTC)) // HOUR
    bumped: set[tuple[str, int]] = session.info.setdefault(_BUMPED, set())
    reached = {(site_id, seconds_of(at) // HOUR) for site_id, at in activity}
    due = sorted((site_id, hour) for site_id, hour in reached - bumped if hour < current)
    if not due:
        return
    await insert_many(
        session,
        core_table(HourVersion),
        [{"site_id": site_id, "hour": hour, "version": 1} for site_id, hour in due],
        on_conflict=_bump_version,
    )
    bumped.update(due)


def _bump_version(insert: Any) -> Any:
    table = insert.table
    return insert.on_conflict_do_update(
        index_elements=[table.c.site_id, table.c.hour], set_={"version": table.c.version + 1}
    )


# -- raw windows -------------------------------------------------------------------------------


async def _raw_activity(session: AsyncSession, site_id: str, windows: Sequence[Window]) -> BitMap:
    visitors = BitMap()
    edges: list[Window] = []
    slot_ranges = []
    for window in windows:
        first, stop, window_edges = slot_plan(window)
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


# -- cached periods ----------------------------------------------------------------------------


def _in_runs(column: Any, periods: Sequence[int]) -> ColumnElement[bool]:
    """``column`` within the contiguous runs of ``periods``: two parameters a run, not one a
    period, so that years of hours stay far below the drivers' parameter limits."""
    return or_(*(and_(column >= first, column < stop) for first, stop in runs(periods)))


async def _build_hours(session: AsyncSession, site_id: str, hours: Sequence[int]) -> Cached:
    """Bitmaps (and completion counts) per (hour, goal) computed from the raw tables."""
    built: Cached = {(h, ANY_ACTIVITY): (BitMap(), 0) for h in hours}
    slots_per_hour = HOUR // SLOT_SECONDS
    slot = col(VisitorSlot.slot)
    at = col(GoalCompletion.completed_at)
    hour_of = epoch_seconds(session, at) // HOUR
    for first, stop in runs(hours):
        rows = await session.execute(
            select(slot, col(VisitorSlot.visitor_id)).where(
                col(VisitorSlot.site_id) == site_id,
                slot >= first * slots_per_hour,
                slot < stop * slots_per_hour,
            )
        )
        for slot_number, visitor in rows.all():
            built[(slot_number // slots_per_hour, ANY_ACTIVITY)][0].add(visitor)
        completions = await session.execute(
            select(hour_of, col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
                col(GoalCompletion.site_id) == site_id,
                at >= instant_of(first * HOUR),
                at < instant_of(stop * HOUR),
            )
        )
        for hour, goal_id, visitor in completions.all():
            bitmap, count = built.setdefault((int(hour), goal_id), (BitMap(), 0))
            bitmap.add(visitor)
            built[(int(hour), goal_id)] = (bitmap, count + 1)
    return built


def _days_from_hours(hours: Cached) -> Cached:
    """Per (day, goal): the union of the hours' bitmaps and the sum of their completions."""
    parts: dict[tuple[int, int], list[BitMap]] = defaultdict(list)
    events: dict[tuple[int, int], int] = defaultdict(int)
    for (hour, goal_id), (bitmap, count) in hours.items():
        key = (hour * HOUR // DAY, goal_id)
        parts[key].append(bitmap)
        events[key] += count
    return {key: (BitMap.union(*bitmaps), events[key]) for key, bitmaps in parts.items()}


_STORE_CHUNK = 500
"""Rows per INSERT when caching: 7 parameters a row stays far below every driver's limit."""


async def store_built(
    session: AsyncSession, *, site_id: str, span: int, built: Cached, versions: dict[int, int]
) -> None:
    """Upsert freshly built bitmaps; a row already cached at the same or a newer version wins.

    Concurrent builders of the same period (other requests, other workers) therefore never
    collide on the primary key, and a slow builder cannot overwrite a newer build.
    """
    rows = [
        {
            "site_id": site_id,
            "span": span,
            "period": period,
            "goal_id": goal_id,
            "version": versions[period],
            "events": count,
            "visitors": bitmap.serialize(),
        }
        for (period, goal_id), (bitmap, count) in built.items()
    ]
    insert = dialect_insert(session)
    for first in range(0, len(rows), _STORE_CHUNK):
        statement = insert(ActivityBitmap).values(rows[first : first + _STORE_CHUNK])
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["site_id", "span", "period", "goal_id"],
                set_={
                    "version": statement.excluded.version,
                    "events": statement.excluded.events,
                    "visitors": statement.excluded.visitors,
                },
                where=col(ActivityBitmap.version) < statement.excluded.version,
            )
        )


FlightKey = tuple[str, int, tuple[int, ...], tuple[int, ...]]


class ActivityCache:
    """Per process: one build per stale set of periods at a time, stored off the request path.

    A request that finds periods stale builds them on its own connection (it already holds one)
    and answers from the result; storing happens afterwards in a background task on a write
    session of its own, at most one at a time, so a request never waits for a second
    connection while holding the first: the pool cannot deadlock on a cold cache. Requests that
    need the same stale periods at the same versions wait for the first builder's result
    instead of building again (single flight).
    """

    MAX_PENDING = 64

    def __init__(self, writer: Callable[[], AbstractAsyncContextManager[AsyncSession]]) -> None:
        self._writer = writer
        self._flights: dict[FlightKey, asyncio.Future[Cached]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._one_writer: asyncio.Lock | None = None
        self._shared: dict[Hashable, asyncio.Future[Any]] = {}
        self.memo: dict[Hashable, Any] = {}
        """Small per-database memos of other derived data (revenue: MRR at past instants)."""

    async def build(
        self, key: FlightKey, build: Callable[[], Awaitable[Cached]], versions: dict[int, int]
    ) -> Cached:
        """The bitmaps of ``key``'s periods: from a build already under way, or built now (and
        then stored in the background, by this builder only)."""
        flight = self._flights.get(key)
        if flight is not None:
            await asyncio.wait([flight])  # raises only if *this* request is cancelled
            if not flight.cancelled() and flight.exception() is None:
                return flight.result()
            # The first builder failed or went away: build for ourselves.
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            built = await build()
        except BaseException:
            flight.cancel()  # waiters see it and build for themselves
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.set_result(built)
        site_id, span, _, _ = key
        self.store_later(site_id=site_id, span=span, built=built, versions=versions)
        return built

    def store_later(
        self, *, site_id: str, span: int, built: Cached, versions: dict[int, int]
    ) -> None:
        """Persist built bitmaps in the background; a failure or a full queue only costs speed."""
        if len(self._pending) >= self.MAX_PENDING:
            logger.warning("activity cache writes are backed up; not caching %s now", site_id)
            return
        task = asyncio.create_task(self._store(site_id, span, built, dict(versions)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(
        self, site_id: str, span: int, built: Cached, versions: dict[int, int]
    ) -> None:
        if self._one_writer is None:
            self._one_writer = asyncio.Lock()
        async with self._one_writer:
            try:
                async with self._writer() as session:
                    await store_built(
                        session, site_id=site_id, span=span, built=built, versions=versions
                    )
            except Exception as exc:  # derived data: never let caching fail anything
                logger.warning(
                    "could not cache activity bitmaps for %s: %s",
                    site_id,
                    describe_error(exc),
                )

    async def share(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> T:
        """Single flight for other derived data (revenue rollups): the result of the build of
        ``key`` already under way, or of ``build`` run now. The caller stores it."""
        flight = self._shared.get(key)
        if flight is not None:
            await asyncio.wait([flight])
            if not flight.cancelled() and flight.exception() is None:
                result: T = flight.result()
                return result
        flight = asyncio.get_running_loop().create_future()
        self._shared[key] = flight
        try:
            built = await build()
        except BaseException:
            flight.cancel()
            raise
        finally:
            if self._shared.get(key) is flight:
                del self._shared[key]
        flight.set_result(built)
        return built

    def store_later_with(
        self,
        store: Callable[[AsyncSession], Awaitable[None]],
        *,
        what: str,
        context: contextvars.Context | None = None,
    ) -> None:
        """Run ``store`` on a write session of its own in the background, one store at a time
        (shared with the bitmaps' stores, so ``drain`` waits for it); failures only cost speed."""
        if len(self._pending) >= self.MAX_PENDING:
            logger.warning("derived-data writes are backed up; not caching %s now", what)
            return
        task = asyncio.create_task(self._store_with(store, what), context=context)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store_with(
        self, store: Callable[[AsyncSession], Awaitable[None]], what: str
    ) -> None:
        if self._one_writer is None:
            self._one_writer = asyncio.Lock()
        async with self._one_writer:
            try:
                async with self._writer() as session:
                    await store(session)
            except Exception as exc:  # derived data: never let caching fail anything
                logger.warning("could not cache %s: %s", what, describe_error(exc))

    async def drain(self) -> None:
        """Wait until every background store has finished."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


CACHE_KEY = "datasaas_activity_cache"
"""``Session.info`` key of the :class:`ActivityCache` of the session's database."""


async def _versions(
    session: AsyncSession, site_id: str, span: int, periods: Sequence[int]
) -> dict[int, int]:
    """The version of each period: its hour's, or for a day the sum over its 24 hours."""
    per_hour = span // HOUR
    rows = await session.execute(
        select(col(HourVersion.hour), col(HourVersion.version)).where(
            col(HourVersion.site_id) == site_id,
            col(HourVersion.hour) >= periods[0] * per_hour,
            col(HourVersion.hour) < (periods[-1] + 1) * per_hour,
        )
    )
    versions = dict.fromkeys(periods, 0)
    for hour, version in rows.all():
        if hour // per_hour in versions:
            versions[hour // per_hour] += version
    return versions


async def period_versions(
    session: AsyncSession, *, site_id: str, span: int, periods: Sequence[int]
) -> dict[int, int]:
    """The ``hour_version`` of each period of ``span`` (a day's: the sum over its hours)."""
    return await _versions(session, site_id, span, periods)


async def _cached(
    session: AsyncSession,
    site_id: str,
    span: int,
    periods: Sequence[int],
    goal_ids: set[int] | None,
) -> Cached:
    """Bitmaps per (period, goal) of whole periods: cached, or rebuilt when missing or stale.

    A stale hour is rebuilt from the raw rows; a stale day from its 24 hours, themselves read
    from the cache or rebuilt, so a backdated write costs one hour of raw rows, not a day's.
    """
    if not periods:
        return {}
    # Versions first, then data: see the module docstring.
    versions = await _versions(session, site_id, span, periods)
    query = select(
        col(ActivityBitmap.period),
        col(ActivityBitmap.goal_id),
        col(ActivityBitmap.version),
        col(ActivityBitmap.events),
        col(ActivityBitmap.visitors),
    ).where(
        col(ActivityBitmap.site_id) == site_id,
        col(ActivityBitmap.span) == span,
        _in_runs(col(ActivityBitmap.period), periods),
    )
    if goal_ids is not None:
        query = query.where(col(ActivityBitmap.goal_id).in_({ANY_ACTIVITY, *goal_ids}))
    result: Cached = {}
    fresh: set[int] = set()
    for period, goal_id, version, events, blob in (await session.execute(query)).all():
        if period in versions and version == versions[period]:
            result[(period, goal_id)] = (BitMap.deserialize(blob), events)
            if goal_id == ANY_ACTIVITY:
                fresh.add(period)
    stale = [period for period in periods if period not in fresh]
    if not stale:
        return result
    result = {key: value for key, value in result.items() if key[0] in fresh}

    async def build() -> Cached:
        if span == HOUR:
            return await _build_hours(session, site_id, stale)
        hours = [hour for day in stale for hour in range(day * 24, day * 24 + 24)]
        days = _days_from_hours(await _cached(session, site_id, HOUR, hours, goal_ids=None))
        for day in stale:
            days.setdefault((day, ANY_ACTIVITY), (BitMap(), 0))
        return days

    cache: ActivityCache | None = session.info.get(CACHE_KEY)
    if cache is None:  # a session not made by Database: compute, cache nothing
        built = await build()
    else:
        key = (site_id, span, tuple(stale), tuple(versions[period] for period in stale))
        built = await cache.build(key, build, versions)
    result.update(
        (key, value)
        for key, value in built.items()
        if goal_ids is None or key[1] in goal_ids or key[1] == ANY_ACTIVITY
    )
    return result


async def _all_cached(
    session: AsyncSession, site_id: str, plan: Plan, goal_ids: set[int] | None
) -> list[tuple[int, BitMap, int]]:
    """(goal_id, bitmap, completions) of every cached period the plan covers."""
    found: list[tuple[int, BitMap, int]] = []
    for span, periods in plan.periods.items():
        cached = await _cached(session, site_id, span, periods, goal_ids)
        found.extend((goal, bitmap, events) for (_, goal), (bitmap, events) in cached.items())
    return found


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
    plan = plan_range(start, end, now or datetime.now(UTC))
    cached = await _all_cached(session, site_id, plan, goal_ids=set())
    bitmaps = [bitmap for goal, bitmap, _ in cached if goal == ANY_ACTIVITY]
    visitors = BitMap.union(*bitmaps) if bitmaps else BitMap()
    if plan.raw:
        visitors |= await _raw_activity(session, site_id, plan.raw)
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
    plan = plan_range(start, end, now or datetime.now(UTC))
    bitmaps: dict[int, list[BitMap]] = defaultdict(list)
    activity = GoalActivity()
    for goal_id, bitmap, events in await _all_cached(session, site_id, plan, goal_ids):
        if goal_id != ANY_ACTIVITY:
            bitmaps[goal_id].append(bitmap)
            activity.completions[goal_id] = activity.completions.get(goal_id, 0) + events
    activity.visitors = {goal: BitMap.union(*parts) for goal, parts in bitmaps.items()}
    raw = await _raw_goals(session, site_id, plan.raw, goal_ids)
    for goal_id, visitors in raw.visitors.items():
        activity.add(goal_id, visitors, raw.completions[goal_id])
    return activity


async def build_periods(
    session: AsyncSession, *, site_id: str, span: int, periods: Sequence[int]
) -> None:
    """Make sure the bitmaps of ``periods`` are cached: build and store the missing or stale
    ones (the warm-up after an import or at start; reads do the same on demand)."""
    await _cached(session, site_id, span, periods, goal_ids=None)

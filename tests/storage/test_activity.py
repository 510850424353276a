"""Exact visitor and goal counts from cached day bitmaps plus raw edges, on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, union
from sqlmodel import col

from datasaas import periods
from datasaas.resolvers.goals import store_completion
from datasaas.storage import activity
from datasaas.storage.engine import Database
from datasaas.storage.models import ActivityBitmap, GoalCompletion, Pageview, Payment
from tests.factories import make_pageview, make_site

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def naive_visitors(database: Database, start: datetime, end: datetime) -> int:
    """The definition, spelled out: distinct visitors over the three event tables."""
    parts = [
        select(col(table.visitor_id)).where(column >= start, column <= end)
        for table, column in (
            (Pageview, col(Pageview.occurred_at)),
            (GoalCompletion, col(GoalCompletion.completed_at)),
            (Payment, col(Payment.paid_at)),
        )
    ]
    async with database.read() as session:
        total = await session.scalar(select(func.count()).select_from(union(*parts).subquery()))
    return int(total or 0)


async def count(database: Database, start: datetime, end: datetime) -> int:
    """Visitors in the range; returns once the bitmaps it built are cached."""
    async with database.read() as session:
        visitors = await activity.count_visitors(
            session, site_id="ds_test", start=start, end=end, now=NOW
        )
    await database.activity_cache.drain()
    return visitors


async def test_random_ranges_match_the_definition(database: Database) -> None:
    await make_site(database)
    rng = random.Random(7)
    base = at("2026-03-01T00:00:00")
    for n in range(120):
        moment = base + timedelta(minutes=rng.randrange(0, 20 * 24 * 60), seconds=rng.random())
        await make_pageview(database, visitor_id=f"v{n % 70}", at=moment)
        if n % 3 == 0:
            async with database.write() as session:
                await store_completion(
                    session,
                    site_id="ds_test",
                    name="signup",
                    uid=f"g{n}",
                    url=None,
                    metadata=None,
                    at=moment + timedelta(minutes=7),
                )
    for _ in range(25):
        start = base + timedelta(minutes=rng.randrange(0, 20 * 24 * 60), seconds=rng.random())
        end = start + timedelta(minutes=rng.randrange(1, 12 * 24 * 60), seconds=rng.random())
        assert await count(database, start, end) == await naive_visitors(database, start, end)
    # Whole days were cached along the way.
    async with database.read() as session:
        cached = await session.scalar(select(func.count()).select_from(ActivityBitmap))
    assert cached


async def test_backdated_write_invalidates_a_cached_day(database: Database) -> None:
    await make_site(database)
    await make_pageview(database, visitor_id="a", at=at("2026-03-02T10:00:00"))
    start, end = at("2026-03-02T00:00:00"), at("2026-03-03T00:00:00") - timedelta(microseconds=1)
    assert await count(database, start, end) == 1
    async with database.read() as session:
        spans = (
            await session.execute(select(col(ActivityBitmap.span), col(ActivityBitmap.period)))
        ).all()
    assert (periods.DAY, periods.day_of(start)) in spans

    # A late write to that finished day: the cache must not hide it.
    await make_pageview(database, visitor_id="b", at=at("2026-03-02T23:59:59"))
    assert await count(database, start, end) == 2


async def test_partial_slots_at_the_edges_are_exact(database: Database) -> None:
    await make_site(database)
    await make_pageview(database, visitor_id="before", at=at("2026-03-05T10:06:59"))
    await make_pageview(database, visitor_id="inside", at=at("2026-03-05T10:07:00"))
    await make_pageview(database, visitor_id="last", at=at("2026-03-05T10:14:00"))
    await make_pageview(database, visitor_id="after", at=at("2026-03-05T10:14:01"))
    assert await count(database, at("2026-03-05T10:07:00"), at("2026-03-05T10:14:00")) == 2


async def test_goal_activity_counts_completions_and_uniques_across_cache_and_edges(
    database: Database,
) -> None:
    await make_site(database)
    async with database.write() as session:
        for uid, moment in (
            ("a", "2026-03-03T12:00:00"),
            ("a", "2026-03-04T12:00:00"),
            ("b", "2026-03-04T23:30:00"),
            ("c", "2026-03-19T23:00:00"),  # ends less than an hour before NOW: a raw window
        ):
            await store_completion(
                session,
                site_id="ds_test",
                name="signup",
                uid=uid,
                url=None,
                metadata=None,
                at=at(moment),
            )
    async with database.read() as session:
        # New York days: 2026-03-03 05:00Z .. 2026-03-20 04:00Z, ragged at both ends.
        result = await activity.goal_activity(
            session,
            site_id="ds_test",
            start=at("2026-03-03T05:00:00"),
            end=at("2026-03-20T03:59:59.999999"),
            now=NOW,
        )
    await database.activity_cache.drain()
    (goal_id,) = result.completions
    assert result.completions[goal_id] == 4
    assert len(result.visitors[goal_id]) == 3


async def test_an_event_in_the_last_microseconds_of_an_hour_stays_in_that_hour(
    database: Database,
) -> None:
    # SQLite's strftime rounds to milliseconds; the hour must still be the floor.
    await make_site(database)
    async with database.write() as session:
        await store_completion(
            session,
            site_id="ds_test",
            name="signup",
            uid="late",
            url=None,
            metadata=None,
            at=at("2026-03-04T10:59:59.999900"),
        )
    for _ in range(2):  # built from the raw rows, then read back from the cache
        async with database.read() as session:
            result = await activity.goal_activity(
                session,
                site_id="ds_test",
                start=at("2026-03-04T10:00:00"),
                end=at("2026-03-04T10:59:59.999999"),
                now=NOW,
            )
        await database.activity_cache.drain()
        assert list(result.completions.values()) == [1]
    async with database.read() as session:
        cached = await session.execute(
            select(col(ActivityBitmap.period), col(ActivityBitmap.events)).where(
                col(ActivityBitmap.span) == periods.HOUR, col(ActivityBitmap.goal_id) != 0
            )
        )
    assert cached.all() == [(periods.seconds_of(at("2026-03-04T10:00:00")) // periods.HOUR, 1)]


async def test_backdated_write_invalidates_cached_hours(database: Database) -> None:
    await make_site(database)
    await make_pageview(database, visitor_id="a", at=at("2026-03-02T06:30:00"))
    # 05:00-20:00: no whole day, fifteen whole hours.
    start, end = at("2026-03-02T05:00:00"), at("2026-03-02T19:59:59.999999")
    assert await count(database, start, end) == 1
    async with database.read() as session:
        spans = {
            span for (span,) in (await session.execute(select(col(ActivityBitmap.span)))).all()
        }
    assert spans == {periods.HOUR}

    await make_pageview(database, visitor_id="b", at=at("2026-03-02T10:15:00"))
    assert await count(database, start, end) == 2


def test_plan_uses_days_then_hours_then_raw_windows() -> None:
    # New York's 2026-03-03 .. 2026-03-05 local days, read at NOW.
    plan = periods.plan_range(at("2026-03-03T05:00:00"), at("2026-03-06T04:59:59.999999"), now=NOW)
    assert plan.periods[periods.DAY] == [
        periods.day_of(at("2026-03-04T00:00:00")),
        periods.day_of(at("2026-03-05T00:00:00")),
    ]
    assert len(plan.periods[periods.HOUR]) == 19 + 5
    assert plan.raw == []
    # A range ending now: the last hour and the running one stay raw.
    live = periods.plan_range(at("2026-03-20T09:10:00"), at("2026-03-20T11:59:59.999999"), NOW)
    assert live.periods[periods.DAY] == []
    assert live.periods[periods.HOUR] == [int(at("2026-03-20T10:00:00").timestamp()) // 3600]
    assert live.raw == [
        (at("2026-03-20T09:10:00"), at("2026-03-20T10:00:00")),
        (at("2026-03-20T11:00:00"), at("2026-03-20T12:00:00")),
    ]


async def test_years_long_range_on_a_cold_cache(database: Database) -> None:
    # Tens of thousands of hours to build: parameters must not grow with the number of hours.
    await make_site(database)
    await make_pageview(database, visitor_id="old", at=at("2022-06-01T10:00:00"))
    await make_pageview(database, visitor_id="new", at=at("2026-02-01T10:00:00"))
    start, end = at("2021-01-01T00:00:00"), at("2026-02-28T23:59:59.999999")
    assert await count(database, start, end) == 2
    assert await count(database, start, end) == 2  # and again, from the cache


async def test_bulk_demo_pageviews_invalidate_cached_hours(database: Database) -> None:
    from datasaas.storage import pageviews, visitors

    await make_site(database)
    await make_pageview(database, visitor_id="a", at=at("2026-03-02T10:00:00"))
    start, end = at("2026-03-02T00:00:00"), at("2026-03-02T23:59:59.999999")
    assert await count(database, start, end) == 1
    async with database.write() as session:
        key = await visitors.visitor_key(
            session, site_id="ds_test", uid="b", seen_at=at("2026-03-02T11:00:00")
        )
        await pageviews.insert_pageviews(
            session,
            [
                {
                    "site_id": "ds_test",
                    "visitor_id": key,
                    "session_id": "s",
                    "occurred_at": at("2026-03-02T11:00:00"),
                    "url": "https://example.com/",
                }
            ],
        )
    assert await count(database, start, end) == 2

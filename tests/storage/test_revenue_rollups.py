"""Revenue rollups and the MRR memo: exact against the payments, cold, cached and after writes."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import col

from datasaas.resolvers import payments as payment_resolvers
from datasaas.storage import payments as payment_store
from datasaas.storage import revenue_rollups, warmup
from datasaas.storage.engine import Database
from datasaas.storage.models import ActivityBitmap, Payment, RevenueRollup
from tests.factories import make_site, pay

DAY0 = (datetime.now(UTC) - timedelta(days=6)).replace(hour=0, minute=0, second=0, microsecond=0)


async def seed(database: Database) -> None:
    await make_site(database)
    rng = random.Random(7)
    for number in range(60):
        at = DAY0 + timedelta(seconds=rng.randrange(5 * 86_400))
        kind = rng.choice(["one_time", "recurring", "one_time"])
        await pay(
            database,
            f"t{number}",
            at,
            f"{rng.randrange(0, 50)}.{rng.randrange(100):02d}",
            payment_type=kind,
            visitor=f"v{number % 17}",
        )
        if number % 6 == 0:
            await pay(
                database,
                f"r{number}",
                at + timedelta(hours=rng.randrange(1, 30)),
                "0.50",
                payment_type="refund",
                original_transaction_id=f"t{number}",
            )
    # The last microseconds of an hour belong to that hour.
    await pay(database, "edge", DAY0 + timedelta(hours=30, microseconds=-100), "7.00")


async def naive(database: Database, start: datetime, end: datetime) -> tuple[int, int, int]:
    async with database.read() as session:
        rows = (
            await session.execute(
                select(
                    col(Payment.payment_type),
                    col(Payment.amount_minor),
                    col(Payment.reporting_amount_minor),
                    col(Payment.visitor_id),
                ).where(col(Payment.paid_at) >= start, col(Payment.paid_at) <= end)
            )
        ).all()
    new = sum(r[2] for r in rows if r[0] != "refund")
    refunds = sum(r[2] for r in rows if r[0] == "refund")
    payers = {r[3] for r in rows if r[0] != "refund" and r[1] > 0}
    return new, refunds, len(payers)


async def rolled(database: Database, start: datetime, end: datetime) -> tuple[int, int, int]:
    async with database.read() as session:
        total = await revenue_rollups.revenue_in_range(
            session, site_id="ds_test", start=start, end=end
        )
    await database.activity_cache.drain()
    return total.new_minor, total.refund_minor, len(total.payers)


def ranges() -> list[tuple[datetime, datetime]]:
    rng = random.Random(11)
    result = [(DAY0, DAY0 + timedelta(days=5) - timedelta(microseconds=1))]
    for _ in range(8):
        start = DAY0 + timedelta(seconds=rng.randrange(5 * 86_400))
        result.append((start, start + timedelta(seconds=rng.randrange(1, 4 * 86_400))))
    result.append((DAY0 + timedelta(hours=29), DAY0 + timedelta(hours=30, microseconds=-1)))
    return result


async def test_summary_sums_match_the_payments_cold_cached_and_after_writes(
    database: Database,
) -> None:
    await seed(database)
    for start, end in ranges():
        assert await rolled(database, start, end) == await naive(database, start, end)
    async with database.read() as session:
        cached = await session.scalar(select(func.count()).select_from(RevenueRollup))
    assert cached, "the reads stored rollups"
    for start, end in ranges():  # from the cache now
        assert await rolled(database, start, end) == await naive(database, start, end)
    # A backdated payment and a refund into cached hours, then a delete: seen at once.
    await pay(database, "late", DAY0 + timedelta(hours=50, minutes=3), "11.00", visitor="new")
    await pay(
        database,
        "late-refund",
        DAY0 + timedelta(hours=2),
        "1.25",
        payment_type="refund",
        original_transaction_id="t1",
    )
    for start, end in ranges():
        assert await rolled(database, start, end) == await naive(database, start, end)
    async with database.write() as session:
        await payment_resolvers.delete_payment(session, site_id="ds_test", transaction_id="late")
    for start, end in ranges():
        assert await rolled(database, start, end) == await naive(database, start, end)


def local_days(zone: str) -> list[tuple[datetime, datetime]]:
    tz = ZoneInfo(zone)
    first = DAY0.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(first + timedelta(days=n)).replace(tzinfo=tz) for n in range(7)]
    edges = [day.astimezone(UTC) for day in days]
    return list(itertools.pairwise(edges))


async def test_series_per_local_day_matches_the_payments(database: Database) -> None:
    await seed(database)
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):  # Kolkata: half-hour offset
        bounds = local_days(zone)
        for _ in range(2):  # cold, then cached
            async with database.read() as session:
                series = await revenue_rollups.revenue_per_bucket(
                    session, site_id="ds_test", bounds=bounds
                )
            await database.activity_cache.drain()
            assert series is not None
            expected = []
            for start, end in bounds:
                new, refunds, _ = await naive(database, start, end - timedelta(microseconds=1))
                expected.append((new, refunds))
            assert series == expected, zone


async def test_mrr_memo_holds_only_while_no_payment_lands_before_the_instant(
    database: Database,
) -> None:
    await seed(database)
    at = DAY0 + timedelta(days=4, hours=5)

    async def both() -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
        async with database.read() as session:
            memo = await revenue_rollups.recurring_covering(session, site_id="ds_test", at=at)
            plain = await payment_store.recurring_covering(session, site_id="ds_test", at=at)
        return memo, plain

    first, plain = await both()
    assert first == plain
    assert first
    assert await both() == (plain, plain)  # from the memo
    await pay(database, "sub", at - timedelta(days=2), "30.00", payment_type="recurring")
    memo, plain = await both()
    assert memo == plain != first
    await pay(
        database,
        "sub-refund",
        at - timedelta(days=1),
        "30.00",
        payment_type="refund",
        original_transaction_id="sub",
    )
    memo, plain = await both()
    assert memo == plain == first


async def test_warm_up_builds_every_finished_day_once(database: Database) -> None:
    await seed(database)
    built = await warmup.warm_site(database, site_id="ds_test")
    assert built >= 5
    async with database.read() as session:
        rollups = await session.scalar(select(func.count()).select_from(RevenueRollup))
        bitmaps = await session.scalar(select(func.count()).select_from(ActivityBitmap))
    assert rollups
    assert bitmaps
    assert await warmup.warm_site(database, site_id="ds_test") == 0
    for start, end in ranges():
        assert await rolled(database, start, end) == await naive(database, start, end)


async def test_ranges_over_centuries_plan_only_the_days_with_payments(database: Database) -> None:
    await seed(database)
    start, end = datetime(2, 1, 1, tzinfo=UTC), datetime(9998, 12, 31, tzinfo=UTC)
    assert await rolled(database, start, end) == await naive(database, start, end)
    years = [
        (datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))
        for year in range(2000, 2100)
    ]
    async with database.read() as session:
        series = await revenue_rollups.revenue_per_bucket(session, site_id="ds_test", bounds=years)
    assert series is not None
    new, refunds, _ = await naive(database, start, end)
    assert sum(n for n, _ in series) == new
    assert sum(r for _, r in series) == refunds
    assert sum(1 for n, r in series if n or r) <= 2

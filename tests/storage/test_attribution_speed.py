"""Filtered revenue, breakdowns, series and MRR from the rollups' per-payer amounts: exact.

Every number is checked against naive sums over the payments of the matching visitors (the
visitor's attributes read from ``visitor``), cold, cached, after backdated payments and
refunds into cached hours, after a delete, and on rollups cached before migration 0010.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyroaring import BitMap
from sqlalchemy import delete, event, func, select, update
from sqlmodel import col

from datasaas import billing
from datasaas.filters import Dimension, Filter, from_query, matches
from datasaas.money import to_major
from datasaas.periods import seconds_of
from datasaas.resolvers import breakdowns as breakdown_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import store_completion
from datasaas.resolvers.sites import require_site
from datasaas.storage import dimensions, levels, revenue_rollups, warmup
from datasaas.storage import filters as filter_store
from datasaas.storage import payments as payment_store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.dimensions import (
    DimensionIndex,
    decode_snapshot,
    dimension_index,
    encode_snapshot,
)
from datasaas.storage.engine import Database
from datasaas.storage.models import (
    CompletionLevel,
    DimensionSnapshot,
    Goal,
    GoalCompletion,
    Payment,
    RevenueRollup,
    Visitor,
)
from datasaas.storage.revenue_rollups import PayerAmounts
from datasaas.timerange import Period
from tests.factories import make_site, pay

DAY0 = (datetime.now(UTC) - timedelta(days=6)).replace(hour=0, minute=0, second=0, microsecond=0)
DEVICES = ("mobile", "desktop", "tablet")
SOURCES = ("Google", "Twitter", "goodreads.com", "Direct")
COUNTRIES = ("United States", "France", "India")

FILTERS: tuple[list[Filter], ...] = (
    from_query([("device_type[is]", "mobile")]),
    from_query([("source[is_not]", "Google")]),  # keeps the visitors without a source
    from_query([("source[contains]", "GOO")]),
    from_query([("country[is]", "France"), ("device_type[is_not]", "desktop")]),
)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed(database: Database) -> None:
    """24 visitors (four first seen server-side: no attributes), random payments and refunds."""
    await make_site(database)
    rng = random.Random(2026)
    async with database.write() as session:
        for number in range(24):
            key = await visitor_store.visitor_key(
                session, site_id="ds_test", uid=f"v{number}", seen_at=DAY0
            )
            if number % 6 == 5:
                continue  # pending: attributes stay null until a first pageview
            touch = {
                "device_type": rng.choice(DEVICES),
                "source": rng.choice((*SOURCES, None)),
                "country": rng.choice(COUNTRIES),
            }
            await visitor_store.set_first_touches(session, at=DAY0, touches={key: touch})
    for number in range(70):
        at = DAY0 + timedelta(seconds=rng.randrange(5 * 86_400))
        kind = rng.choice(["one_time", "recurring", "one_time"])
        visitor = f"v{rng.randrange(24)}"
        amount = f"{rng.randrange(0, 40)}.{rng.randrange(100):02d}"
        await pay(database, f"t{number}", at, amount, payment_type=kind, visitor=visitor)
        if number % 5 == 0:
            await pay(
                database,
                f"r{number}",
                at + timedelta(hours=rng.randrange(1, 30)),
                "0.75",
                payment_type="refund",
                original_transaction_id=f"t{number}",
                visitor=visitor,
            )
    # The last microseconds of an hour belong to that hour.
    edge = DAY0 + timedelta(hours=30, microseconds=-100)
    await pay(database, "edge", edge, "7.00", visitor="v0")


@dataclass(frozen=True, slots=True)
class Row:
    """One payment with its visitor's first touch, as naive sums read them."""

    kind: str
    amount: int
    reporting: int
    visitor: int
    paid_at: datetime
    attributes: dict[str, str | None]


async def rows(database: Database) -> list[Row]:
    async with database.read() as session:
        found = await session.execute(
            select(
                col(Payment.payment_type),
                col(Payment.amount_minor),
                col(Payment.reporting_amount_minor),
                col(Payment.visitor_id),
                col(Payment.paid_at),
                col(Visitor.device_type),
                col(Visitor.source),
                col(Visitor.country),
            ).join(Visitor, col(Visitor.id) == col(Payment.visitor_id))
        )
        return [
            Row(*r[:5], {"device_type": r[5], "source": r[6], "country": r[7]}) for r in found.all()
        ]


def matching(row: Row, filters: list[Filter]) -> bool:
    return all(matches(flt, row.attributes[flt.dimension.value]) for flt in filters)


def sums(selected: list[Row]) -> tuple[int, int, int]:
    new = sum(r.reporting for r in selected if r.kind != "refund")
    refunds = sum(r.reporting for r in selected if r.kind == "refund")
    payers = {r.visitor for r in selected if r.kind != "refund" and r.amount > 0}
    return new, refunds, len(payers)


def in_range(all_rows: list[Row], start: datetime, end: datetime) -> list[Row]:
    return [r for r in all_rows if start <= r.paid_at <= end]


def periods() -> list[Period]:
    rng = random.Random(5)
    result = [Period(stamp(DAY0), stamp(DAY0 + timedelta(days=5, seconds=-1)))]
    for _ in range(5):
        start = DAY0 + timedelta(seconds=rng.randrange(5 * 86_400))
        end = start + timedelta(seconds=rng.randrange(1, 4 * 86_400))
        result.append(Period(stamp(start), stamp(end)))
    result.append(Period(stamp(DAY0 + timedelta(hours=29)), stamp(DAY0 + timedelta(hours=30))))
    return result


async def naive_mrr(database: Database, at: datetime, filters: list[Filter]) -> int:
    """MRR through the SQL path the filtered summary used before: covering payments narrowed
    by the filter's condition on ``visitor``."""
    async with database.read() as session:
        condition = await filter_store.visitor_filter(session, site_id="ds_test", filters=filters)
        assert condition is not None
        groups = await payment_store.recurring_covering(
            session, site_id="ds_test", at=at, visitors=condition.applies_to(Payment.visitor_id)
        )
    return billing.normalised_mrr(
        (billing.BillingInterval(interval), count, net) for interval, count, net in groups
    )


async def check_summaries(database: Database) -> None:
    """Filtered summaries (totals, payers, MRR) equal the naive sums for every range."""
    all_rows = await rows(database)
    for period, filters in itertools.product(periods(), FILTERS):
        async with database.read() as session:
            site = await require_site(session, "ds_test")
            summary = await revenue_resolvers.revenue_summary(
                session, site=site, period=period, filters=filters
            )
        await database.activity_cache.drain()
        rng = period.resolve()
        selected = [r for r in in_range(all_rows, rng.start, rng.end) if matching(r, filters)]
        new, refunds, payers = sums(selected)
        assert (summary.new_revenue, summary.refund_revenue, summary.paying_visitors) == (
            to_major(new, "USD"),
            to_major(refunds, "USD"),
            payers,
        ), (period, filters)
        assert summary.mrr == to_major(await naive_mrr(database, rng.end, filters), "USD")


async def check_breakdowns(database: Database) -> None:
    """Every breakdown row's revenue equals the naive sums over its value's visitors."""
    all_rows = await rows(database)
    for period, dimension, filters in itertools.product(
        periods()[:3], ("source", "country", "device_type"), ([], *FILTERS[:2])
    ):
        async with database.read() as session:
            site = await require_site(session, "ds_test")
            breakdown = await breakdown_resolvers.revenue_breakdown(
                session, site=site, period=period, dimension=dimension, filters=filters, limit=100
            )
        await database.activity_cache.drain()
        rng = period.resolve()
        per_value: dict[str | None, list[Row]] = defaultdict(list)
        for row in in_range(all_rows, rng.start, rng.end):
            if matching(row, filters):
                per_value[row.attributes[dimension]].append(row)
        got = {
            r.value: (r.new_revenue, r.refund_revenue, r.paying_visitors) for r in breakdown.rows
        }
        assert set(per_value) <= set(got), (period, dimension, filters)
        for value, numbers in got.items():
            new, refunds, payers = sums(per_value.get(value, []))
            expected = (to_major(new, "USD"), to_major(refunds, "USD"), payers)
            assert numbers == expected, (period, dimension, filters, value)


def local_days(zone: str) -> list[tuple[datetime, datetime]]:
    tz = ZoneInfo(zone)
    first = DAY0.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(first + timedelta(days=n)).replace(tzinfo=tz) for n in range(7)]
    return list(itertools.pairwise(day.astimezone(UTC) for day in days))


async def check_series(database: Database) -> None:
    """Per local day (UTC, New York, Kolkata), a key set's new revenue and refunds are exact."""
    all_rows = await rows(database)
    for zone, filters in itertools.product(("UTC", "America/New_York", "Asia/Kolkata"), FILTERS):
        keys = BitMap(r.visitor for r in all_rows if matching(r, filters))
        async with database.read() as session:
            series = await revenue_rollups.revenue_per_bucket(
                session, site_id="ds_test", bounds=local_days(zone), among=keys
            )
        await database.activity_cache.drain()
        expected = []
        for start, end in local_days(zone):
            selected = [r for r in all_rows if start <= r.paid_at < end and r.visitor in keys]
            new, refunds, _ = sums(selected)
            expected.append((new, refunds))
        assert series == expected, (zone, filters)


async def check_everything(database: Database) -> None:
    await check_summaries(database)
    await check_breakdowns(database)
    await check_series(database)


async def test_filtered_revenue_is_exact_cold_cached_and_after_writes(
    database: Database,
) -> None:
    await seed(database)
    await check_everything(database)  # cold: rollups built by the reads
    async with database.read() as session:
        kept = await session.scalar(
            select(func.count())
            .select_from(RevenueRollup)
            .where(col(RevenueRollup.payer_amounts).is_not(None))
        )
    assert kept, "the reads stored rollups with their per-payer amounts"
    await check_everything(database)  # cached
    # Backdated payments and a refund into cached hours, by a new and an existing visitor.
    await pay(database, "late", DAY0 + timedelta(hours=50, minutes=3), "11.00", visitor="v3")
    await pay(database, "late-new", DAY0 + timedelta(hours=51), "4.00", visitor="newcomer")
    await pay(
        database,
        "late-sub",
        DAY0 + timedelta(days=3, hours=2),
        "30.00",
        payment_type="recurring",
        visitor="v1",
    )
    await pay(
        database,
        "late-refund",
        DAY0 + timedelta(hours=2),
        "1.25",
        payment_type="refund",
        original_transaction_id="t1",
        visitor="v1",
    )
    await check_everything(database)
    async with database.write() as session:
        await payment_resolvers.delete_payment(session, site_id="ds_test", transaction_id="late")
    await check_everything(database)


async def test_rollups_cached_before_their_amounts_were_kept_are_rebuilt(
    database: Database,
) -> None:
    """Rows as migration 0010 leaves them (no ``payer_amounts``) are rebuilt by filtered reads
    and by the warm-up, at the same version."""
    await seed(database)
    assert await warmup.warm_site(database, site_id="ds_test") > 0
    async with database.write() as session:
        await session.execute(update(RevenueRollup).values(payer_amounts=None))
    await check_everything(database)
    async with database.write() as session:
        await session.execute(update(RevenueRollup).values(payer_amounts=None))
    assert await warmup.warm_site(database, site_id="ds_test") > 0
    async with database.read() as session:
        # The warm-up covers the days from the first event on (the New York series also
        # cached empty hours of the day before, which reads rebuild when they need them).
        missing = await session.scalar(
            select(func.count())
            .select_from(RevenueRollup)
            .where(
                col(RevenueRollup.payer_amounts).is_(None),
                col(RevenueRollup.period) * col(RevenueRollup.span) >= seconds_of(DAY0),
            )
        )
    assert missing == 0
    assert await warmup.warm_site(database, site_id="ds_test") == 0
    await check_everything(database)


async def test_filtered_mrr_memo_follows_backdated_subscriptions_and_refunds(
    database: Database,
) -> None:
    await seed(database)
    at = DAY0 + timedelta(days=4, hours=5)
    mobile = FILTERS[0]

    async def memoised() -> int:
        async with database.read() as session:
            keys = await (
                await filter_store.visitor_filter(session, site_id="ds_test", filters=mobile)
            ).keys(session)  # type: ignore[union-attr]
            return await revenue_resolvers.mrr_minor(session, site_id="ds_test", at=at, among=keys)

    first = await memoised()
    assert first == await naive_mrr(database, at, mobile)
    assert await memoised() == first  # from the memo
    async with database.read() as session:
        mobile_visitor = await session.scalar(
            select(col(Visitor.uid)).where(col(Visitor.device_type) == "mobile").limit(1)
        )
    assert mobile_visitor is not None
    await pay(
        database,
        "sub",
        at - timedelta(days=2),
        "30.00",
        payment_type="recurring",
        visitor=mobile_visitor,
    )
    after = await memoised()
    assert after == await naive_mrr(database, at, mobile) != first
    await pay(
        database,
        "sub-refund",
        at - timedelta(days=1),
        "30.00",
        payment_type="refund",
        original_transaction_id="sub",
        visitor=mobile_visitor,
    )
    assert await memoised() == await naive_mrr(database, at, mobile) == first


def test_payer_amounts_round_trip_packed_and_wide() -> None:
    def lists(amounts: PayerAmounts) -> tuple[list[int], list[int], list[int]]:
        return list(amounts.keys), list(amounts.new), list(amounts.refund)

    packed = PayerAmounts.of({3: [1_250, 0], 1: [0, 75], 2**31: [9_000_000_000_000, 1]})
    assert lists(PayerAmounts.deserialize(packed.serialize())) == (
        [1, 3, 2**31],
        [0, 1_250, 9_000_000_000_000],
        [75, 0, 1],
    )
    wide = PayerAmounts.of({5: [2**70, 0], 6: [1, 2**64]})  # sums beyond 64 bits stay exact
    assert lists(PayerAmounts.deserialize(wide.serialize())) == ([5, 6], [2**70, 1], [0, 2**64])
    assert PayerAmounts.deserialize(PayerAmounts.of({}).serialize()).among(BitMap([1])) == (0, 0)


# -- dimension snapshots: a fresh worker starts warm -------------------------------------------


async def naive_devices(database: Database, site_id: str) -> dict[str | None, BitMap]:
    grouped: dict[str | None, BitMap] = defaultdict(BitMap)
    async with database.read() as session:
        found = await session.execute(
            select(col(Visitor.device_type), col(Visitor.id)).where(col(Visitor.site_id) == site_id)
        )
        for value, key in found.all():
            grouped[value].add(key)
    return dict(grouped)


async def indexed_devices(database: Database, site_id: str) -> dict[str | None, BitMap]:
    async with database.read() as session:
        index = await dimension_index(session, site_id=site_id, dimension="device_type")
        return {value: keys.copy() for value, keys in index.values.items() if keys}


async def devices_of_a_fresh_worker(
    url: str, site_id: str
) -> tuple[dict[str | None, BitMap], list[str]]:
    """The device bitmaps as a new process sees them on its first read after its warm-up at
    start, and the statements both ran."""
    worker = Database(url)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(worker.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with worker.read() as session:
            await dimensions.warm_index(session, site_id=site_id, dimension="device_type")
        values = await indexed_devices(worker, site_id)
        await worker.activity_cache.drain()
    finally:
        await worker.dispose()
    return values, statements


def scanned_every_visitor(statements: list[str]) -> bool:
    flat = (" ".join(sql.split()) for sql in statements)
    return any("GROUP BY" in sql and "FROM visitor WHERE" in sql for sql in flat)


async def touch(database: Database, site_id: str, uid: str, device: str | None) -> None:
    async with database.write() as session:
        key = await visitor_store.visitor_key(session, site_id=site_id, uid=uid, seen_at=DAY0)
        if device is not None:
            await visitor_store.set_first_touches(
                session, at=DAY0, touches={key: {"device_type": device}}
            )


async def test_a_fresh_worker_loads_the_snapshot_and_sees_every_later_visitor(
    database: Database, database_url: str
) -> None:
    await seed(database)
    await make_site(database, site_id="ds_other")
    await warmup.warm_site(database, site_id="ds_test")  # builds and stores the snapshots
    async with database.read() as session:
        stored = await session.scalar(select(func.count()).select_from(DimensionSnapshot))
    assert stored == len(Dimension)
    values, statements = await devices_of_a_fresh_worker(database_url, "ds_test")
    assert values == await naive_devices(database, "ds_test")
    assert not scanned_every_visitor(statements), "the snapshot was loaded, not rebuilt"
    # After the snapshot: new visitors of both sites, and the pending ones' first touches.
    for number in range(8):
        await touch(database, "ds_test", f"late{number}", DEVICES[number % 3])
        await touch(database, "ds_other", f"other{number}", "mobile")
    for number in (5, 11):  # seeded without attributes (server-side first)
        await touch(database, "ds_test", f"v{number}", "tablet")
    await touch(database, "ds_test", "still-pending", None)
    values, statements = await devices_of_a_fresh_worker(database_url, "ds_test")
    assert values == await naive_devices(database, "ds_test")
    assert not scanned_every_visitor(statements)


async def test_a_snapshot_is_not_trusted_when_ids_were_reused(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite hands out the highest deleted ids again: a visitor of this site with such an id is
    neither above the snapshot's ``high`` nor a hole, and must still be found."""
    monkeypatch.setattr(dimensions, "_SNAPSHOT_AFTER", 0)  # store on every warm-up

    async def warm() -> None:
        async with database.read() as session:
            await dimensions.warm_index(session, site_id="ds_test", dimension="device_type")
        await database.activity_cache.drain()

    await make_site(database)
    await make_site(database, site_id="ds_gone")
    for number in range(5):
        await touch(database, "ds_test", f"a{number}", "mobile")
    await warm()
    for number in range(5):
        await touch(database, "ds_gone", f"g{number}", "desktop")
    await warm()  # looks at the other site's (higher) ids: the snapshot's high covers them
    assert await indexed_devices(database, "ds_test") == await naive_devices(database, "ds_test")
    async with database.write() as session:
        await session.execute(delete(Visitor).where(col(Visitor.site_id) == "ds_gone"))
    for number in range(3):
        await touch(database, "ds_test", f"b{number}", "tablet")
    values, _ = await devices_of_a_fresh_worker(database_url, "ds_test")
    assert values == await naive_devices(database, "ds_test")
    assert len(values["tablet"]) == 3


def test_snapshots_round_trip() -> None:
    index = DimensionIndex("ds_test", "country", high=40)
    index.values = {"France": BitMap([1, 7, 30]), None: BitMap([2, 40])}
    index.holes, index.pending = BitMap([3, 4]), BitMap([40])
    back = decode_snapshot("ds_test", "country", 40, encode_snapshot(index))
    assert (back.values, back.holes, back.pending, back.high) == (
        index.values,
        index.holes,
        index.pending,
        40,
    )
    assert back.known == BitMap([1, 2, 7, 30, 40])


# -- completion levels: stored by the warm-up, loaded at start -------------------------------


async def naive_completions(
    database: Database, start: datetime, end: datetime, keys: list[BitMap]
) -> list[dict[int, int]]:
    async with database.read() as session:
        found = await session.execute(
            select(col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
                col(GoalCompletion.completed_at) >= start, col(GoalCompletion.completed_at) <= end
            )
        )
        rows = found.all()
    counts: list[dict[int, int]] = []
    for bitmap in keys:
        per_goal: dict[int, int] = defaultdict(int)
        for goal, visitor in rows:
            if visitor in bitmap:
                per_goal[goal] += 1
        counts.append(dict(per_goal))
    return counts


async def test_a_fresh_worker_counts_completions_from_stored_levels(
    database: Database, database_url: str
) -> None:
    await make_site(database)
    rng = random.Random(9)

    async def complete(uid: str, at: datetime, name: str) -> None:
        async with database.write() as session:
            await store_completion(
                session, site_id="ds_test", name=name, uid=uid, url=None, metadata=None, at=at
            )

    for _ in range(90):
        at = DAY0 + timedelta(seconds=rng.randrange(5 * 86_400))
        await complete(f"v{rng.randrange(15)}", at, rng.choice(("signup", "buy")))
    assert await warmup.warm_site(database, site_id="ds_test") > 0
    async with database.read() as session:
        goal_ids = list((await session.execute(select(col(Goal.id)))).scalars())
        assert await session.scalar(select(func.count()).select_from(CompletionLevel))
    start, end = DAY0, DAY0 + timedelta(days=5, microseconds=-1)  # whole days: no raw edges
    keys = [BitMap(range(1, 100)), BitMap(range(1, 100, 2))]

    async def counted_by_a_fresh_worker() -> tuple[list[dict[int, int]], list[str]]:
        worker = Database(database_url)
        statements: list[str] = []
        try:
            async with worker.read() as session:
                assert await levels.load(session, site_id="ds_test") > 0

            def record(_conn: object, _cursor: object, sql: str, *_: object) -> None:
                statements.append(" ".join(sql.split()))

            event.listen(worker.engine.sync_engine, "before_cursor_execute", record)
            async with worker.read() as session:
                counts = await levels.count_completions_by(
                    session, site_id="ds_test", goal_ids=goal_ids, start=start, end=end, keys=keys
                )
        finally:
            await worker.dispose()
        return counts, statements

    counts, statements = await counted_by_a_fresh_worker()
    assert counts == await naive_completions(database, start, end, keys)
    assert not any("FROM goal_completion" in sql for sql in statements), "levels were loaded"
    # A backdated completion into a stored day: the loaded level is stale, rebuilt, exact.
    await complete("v3", DAY0 + timedelta(days=2, hours=3), "signup")
    await complete("v4", DAY0 + timedelta(days=1, hours=7), "buy")
    counts, statements = await counted_by_a_fresh_worker()
    assert counts == await naive_completions(database, start, end, keys)
    assert any("FROM goal_completion" in sql for sql in statements)


def test_levels_round_trip() -> None:
    stacks = {3: [BitMap([1, 2, 9]), BitMap([9])], 7: [BitMap([4])], 8: []}
    assert levels.decode_levels(levels.encode_levels(stacks)) == stacks

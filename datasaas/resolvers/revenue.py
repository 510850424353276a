"""Revenue: the summary (net revenue, MRR, conversion) and the local-time series."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pyroaring import BitMap
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas import billing
from datasaas.filters import Filter
from datasaas.metrics import conversion_rate
from datasaas.money import to_major
from datasaas.periods import SLOT_SECONDS
from datasaas.resolvers.goals import audience
from datasaas.storage import filters as filter_store
from datasaas.storage import payments as payment_store
from datasaas.storage import revenue_rollups
from datasaas.storage.models import Payment, Site
from datasaas.timerange import Granularity, Period, TimeRange, buckets


@dataclass(frozen=True, slots=True)
class RevenueSummary:
    """Revenue numbers for a range, amounts in the site's currency (major units)."""

    range: TimeRange
    currency: str
    total_revenue: Decimal
    new_revenue: Decimal
    refund_revenue: Decimal
    mrr: Decimal
    paying_visitors: int
    visitors: int
    conversion_rate: float


@dataclass(frozen=True, slots=True)
class RevenuePoint:
    """One bucket of the series."""

    period: str
    new_revenue: Decimal
    refund_revenue: Decimal


@dataclass(frozen=True, slots=True)
class RevenueSeries:
    """A zero-filled local-time revenue series."""

    range: TimeRange
    granularity: Granularity
    currency: str
    points: list[RevenuePoint]


def add_one_month(at: datetime) -> datetime:
    """The same instant one calendar month later, clamped to the month's end (Jan 31 → Feb 28)."""
    return billing.add_months(at, 1)


def covers(paid_at: datetime, at: datetime) -> bool:
    """Whether a monthly payment's cover, ``[paid_at, paid_at + 1 calendar month)``, holds ``at``.

    The month is added on the UTC calendar, so MRR at an instant does not depend on the time
    zone a report is viewed in.
    """
    paid_utc = paid_at.astimezone(UTC)
    return paid_utc <= at < add_one_month(paid_utc)


async def mrr_minor(
    session: AsyncSession, *, site_id: str, at: datetime, among: BitMap | None = None
) -> int:
    """Monthly recurring revenue at an instant: covering payments' net amounts per month (§12),
    of every visitor or of the visitor keys ``among`` (memoised for instants in the past)."""
    groups = await revenue_rollups.recurring_covering(session, site_id=site_id, at=at, among=among)
    return billing.normalised_mrr(
        (billing.BillingInterval(interval), count, net) for interval, count, net in groups
    )


async def revenue_summary(
    session: AsyncSession, *, site: Site, period: Period, filters: Sequence[Filter] = ()
) -> RevenueSummary:
    """Net revenue, new revenue, refunds, MRR at the range end and the revenue conversion rate."""
    rng = period.resolve()
    who = await audience(session, site_id=site.id, rng=rng, filters=filters)
    # Cached hourly and daily rollups plus the raw edges; filtered: their per-payer amounts
    # summed over the filter's visitor keys.
    if who.keys is None:
        rolled = await revenue_rollups.revenue_in_range(
            session, site_id=site.id, start=rng.start, end=rng.end
        )
        totals = payment_store.RevenueTotals(
            rolled.new_minor, rolled.refund_minor, len(rolled.payers)
        )
    else:
        per_payer = await revenue_rollups.payer_revenue(
            session, site_id=site.id, start=rng.start, end=rng.end
        )
        totals = payment_store.RevenueTotals(*per_payer.totals(who.keys))
    visitors = who.visitors
    mrr = await mrr_minor(session, site_id=site.id, at=rng.end, among=who.keys)
    currency = site.currency
    return RevenueSummary(
        range=rng,
        currency=currency,
        total_revenue=to_major(totals.new_minor - totals.refund_minor, currency),
        new_revenue=to_major(totals.new_minor, currency),
        refund_revenue=to_major(totals.refund_minor, currency),
        mrr=to_major(mrr, currency),
        paying_visitors=totals.paying_visitors,
        visitors=visitors,
        conversion_rate=conversion_rate(totals.paying_visitors, visitors),
    )


async def revenue_timeseries(
    session: AsyncSession,
    *,
    site: Site,
    period: Period,
    granularity: object = None,
    filters: Sequence[Filter] = (),
) -> RevenueSeries:
    """New revenue and refunds per local-time bucket, every bucket present and zero-filled."""
    rng = period.resolve()
    if granularity is not None and not isinstance(granularity, str):
        granularity = str(granularity)
    grain = Granularity.parse(granularity)
    series = buckets(rng, grain)
    currency = site.currency
    matching = await filter_store.visitor_filter(session, site_id=site.id, filters=filters)
    among = await matching.keys(session) if matching is not None else None
    # Sums of cached rollups per bucket (filtered: of the keys' per-payer amounts), raw edges.
    per_bucket = await revenue_rollups.revenue_per_bucket(
        session, site_id=site.id, bounds=[(b.start, b.end) for b in series], among=among
    )
    if per_bucket is not None:
        points = [
            RevenuePoint(b.label, to_major(n, currency), to_major(r, currency))
            for b, (n, r) in zip(series, per_bucket, strict=True)
        ]
        return RevenueSeries(range=rng, granularity=grain, currency=currency, points=points)
    starts = [b.start.timestamp() for b in series]
    # Group in SQL by 15-minute slot when every inner bucket edge falls on a slot boundary (true
    # for all current UTC offsets); otherwise by second, which is exact for any offset.
    aligned = all(s % SLOT_SECONDS == 0 for s in starts[1:])
    granule = SLOT_SECONDS if aligned else 1
    sums = await payment_store.revenue_by_granule(
        session,
        site_id=site.id,
        start=rng.start,
        end=rng.end,
        granule_seconds=granule,
        visitors=matching.applies_to(Payment.visitor_id) if matching else None,
    )
    new = [0] * len(series)
    refunds = [0] * len(series)
    for granule_start, is_refund, amount in sums:
        index = max(0, bisect.bisect_right(starts, granule_start) - 1)
        (refunds if is_refund else new)[index] += amount
    points = [
        RevenuePoint(b.label, to_major(n, currency), to_major(r, currency))
        for b, n, r in zip(series, new, refunds, strict=True)
    ]
    return RevenueSeries(range=rng, granularity=grain, currency=currency, points=points)

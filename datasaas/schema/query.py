"""Root query fields: the REST reads, over the same resolvers, each checking key and site first."""

from __future__ import annotations

import strawberry
from strawberry import UNSET

from datasaas.filters import Dimension
from datasaas.resolvers import breakdowns as breakdown_resolvers
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import Period
from datasaas.resolvers.payments import PaymentType
from datasaas.resolvers.sites import require_site
from datasaas.schema.context import Context
from datasaas.schema.live import Realtime, resolve_realtime
from datasaas.schema.types import (
    NO_FILTERS,
    FilterInput,
    Goal,
    PaymentConnection,
    RevenueBreakdownRow,
    RevenuePoint,
    RevenueSummary,
    given,
    to_filters,
)
from datasaas.timerange import Granularity


def _period(start: str | None, end: str | None, timezone: str | None) -> Period:
    return Period(given(start), given(end), timezone)


async def resolve_goals(
    info: strawberry.Info[Context],
    site_id: str,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
    limit: int | None = 100,
    offset: int | None = 0,
) -> list[Goal]:
    """Goals with unique visitors, completions and conversion rate in the range."""
    await info.context.authorize(site_id)
    parsed = to_filters(filters)
    async with info.context.database.read() as session:
        result = await goal_resolvers.list_goals(
            session,
            site_id=site_id,
            period=_period(start, end, timezone),
            filters=parsed,
            limit=limit,
            offset=offset,
        )
    return [Goal.from_row(row, result.range, site_id, parsed) for row in result.goals]


async def resolve_goal(
    info: strawberry.Info[Context],
    site_id: str,
    name: str,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
) -> Goal:
    """One goal's statistics in the range."""
    await info.context.authorize(site_id)
    period = _period(start, end, timezone)
    parsed = to_filters(filters)
    async with info.context.database.read() as session:
        rng, row = await goal_resolvers.get_goal(
            session, site_id=site_id, name=name, period=period, filters=parsed
        )
    return Goal.from_row(row, rng, site_id, parsed)


async def resolve_revenue(
    info: strawberry.Info[Context],
    site_id: str,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
) -> RevenueSummary:
    """The revenue summary, in the site's reporting currency."""
    await info.context.authorize(site_id)
    async with info.context.database.read() as session:
        site = await require_site(session, site_id)
        summary = await revenue_resolvers.revenue_summary(
            session, site=site, period=_period(start, end, timezone), filters=to_filters(filters)
        )
    return RevenueSummary.from_summary(summary)


async def resolve_revenue_timeseries(
    info: strawberry.Info[Context],
    site_id: str,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
    granularity: Granularity | None = Granularity.DAY,
) -> list[RevenuePoint]:
    """The revenue series, every bucket of the range present."""
    await info.context.authorize(site_id)
    async with info.context.database.read() as session:
        site = await require_site(session, site_id)
        series = await revenue_resolvers.revenue_timeseries(
            session,
            site=site,
            period=_period(start, end, timezone),
            granularity=granularity,
            filters=to_filters(filters),
        )
    return [
        RevenuePoint(
            period=point.period, new_revenue=point.new_revenue, refund_revenue=point.refund_revenue
        )
        for point in series.points
    ]


async def resolve_payments(
    info: strawberry.Info[Context],
    site_id: str,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
    payment_type: PaymentType | None = UNSET,
    first: int | None = 100,
    after: str | None = UNSET,
) -> PaymentConnection:
    """A keyset page of the payments ledger, newest first."""
    await info.context.authorize(site_id)
    async with info.context.database.read() as session:
        page = await payment_resolvers.payment_connection(
            session,
            site_id=site_id,
            period=_period(start, end, timezone),
            filters=to_filters(filters),
            payment_type=given(payment_type),
            first=100 if first is None else first,
            after=given(after),
        )
    return PaymentConnection.from_page(page)


async def resolve_revenue_breakdown(
    info: strawberry.Info[Context],
    site_id: str,
    dimension: Dimension,
    start: str | None = UNSET,
    end: str | None = UNSET,
    timezone: str | None = "UTC",
    filters: list[FilterInput] | None = NO_FILTERS,
    limit: int | None = 100,
    offset: int | None = 0,
) -> list[RevenueBreakdownRow]:
    """Revenue per value of a first-touch dimension."""
    await info.context.authorize(site_id)
    async with info.context.database.read() as session:
        site = await require_site(session, site_id)
        breakdown = await breakdown_resolvers.revenue_breakdown(
            session,
            site=site,
            period=_period(start, end, timezone),
            dimension=dimension,
            filters=to_filters(filters),
            limit=limit,
            offset=offset,
        )
    return [RevenueBreakdownRow.from_row(row) for row in breakdown.rows]


@strawberry.type
class Query:
    """Reads. ``start``/``end``/``timezone`` work as in REST (CONTRACT §5)."""

    goals: list[Goal] = strawberry.field(
        resolver=resolve_goals, description="Every goal the site has recorded, busiest first."
    )
    goal: Goal = strawberry.field(
        resolver=resolve_goal, description="One goal by name; a name never recorded gives zeros."
    )
    revenue: RevenueSummary = strawberry.field(
        resolver=resolve_revenue,
        description="Net revenue, MRR at the range end and revenue conversion.",
    )
    revenue_timeseries: list[RevenuePoint] = strawberry.field(
        resolver=resolve_revenue_timeseries,
        description="New revenue and refunds per local-time bucket, zero-filled.",
    )
    payments: PaymentConnection = strawberry.field(
        resolver=resolve_payments,
        description=(
            "The payments ledger, newest first; `first` is 1-1000, `after` an `endCursor` from "
            "a previous page."
        ),
    )
    realtime: Realtime = strawberry.field(
        resolver=resolve_realtime,
        description="Visitors with any event (heartbeats included) in the last 90 seconds.",
    )
    revenue_breakdown: list[RevenueBreakdownRow] = strawberry.field(
        resolver=resolve_revenue_breakdown,
        description=(
            "Visitors, payers and revenue per value of a first-touch dimension (null = no "
            "value): total revenue desc, visitors desc, value asc."
        ),
    )

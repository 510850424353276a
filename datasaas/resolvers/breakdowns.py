"""Breakdowns (CONTRACT §11): revenue and goal numbers per value of a first-touch dimension.

Rows are the values with at least one visitor in the range (null included), so their visitors
partition the range's visitors. Visitors per value are the range's activity bitmap intersected
with each value's visitor keys; revenue per value sums the revenue rollups' per-payer amounts
over each value's keys; completions per value intersect the completion levels with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.filters import Dimension, Filter, parse_dimension
from datasaas.metrics import conversion_rate
from datasaas.money import to_major
from datasaas.resolvers import validation
from datasaas.resolvers.goals import Audience, active_window, audience
from datasaas.storage import filters as filter_store
from datasaas.storage import goals as goal_store
from datasaas.storage import payments as payment_store
from datasaas.storage import revenue_rollups
from datasaas.storage.dimensions import dimension_index
from datasaas.storage.models import Site
from datasaas.timerange import Period, TimeRange


@dataclass(frozen=True, slots=True)
class RevenueBreakdownRow:
    """Revenue of the visitors with one value of the dimension."""

    value: str | None
    visitors: int
    paying_visitors: int
    new_revenue: Decimal
    refund_revenue: Decimal
    total_revenue: Decimal
    conversion_rate: float
    revenue_per_visitor: Decimal


@dataclass(frozen=True, slots=True)
class GoalBreakdownRow:
    """One goal's numbers among the visitors with one value of the dimension."""

    value: str | None
    visitors: int
    unique_visitors: int
    completion_count: int
    conversion_rate: float


Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Breakdown(Generic[Row]):
    """A page of breakdown rows, with what they were computed for."""

    range: TimeRange
    dimension: Dimension
    currency: str
    limit: int
    offset: int
    rows: list[Row]


def _value_order(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


def per_visitor(total_minor: int, visitors: int, currency: str) -> Decimal:
    """``total_minor / visitors`` in major units, rounded half-even to the currency's decimals."""
    if not visitors:
        return to_major(0, currency)
    return to_major(round(Fraction(total_minor, visitors)), currency)


async def _visitors_per_value(
    session: AsyncSession, site_id: str, dimension: Dimension, who: Audience
) -> dict[str | None, int]:
    """Visitors in range per value; values without any are left out."""
    return await filter_store.visitors_per_value(
        session, site_id=site_id, dimension=dimension.value, among=who.active
    )


async def revenue_breakdown(
    session: AsyncSession,
    *,
    site: Site,
    period: Period,
    dimension: object,
    filters: Sequence[Filter] = (),
    limit: object = None,
    offset: object = None,
) -> Breakdown[RevenueBreakdownRow]:
    """Revenue per value: total_revenue desc, visitors desc, value asc (null last)."""
    dim = parse_dimension(dimension)
    rng = period.resolve()
    page_size, skip = validation.limit(limit), validation.offset(offset)
    who = await audience(session, site_id=site.id, rng=rng, filters=filters)
    visitors = await _visitors_per_value(session, site.id, dim, who)
    per_payer = await revenue_rollups.payer_revenue(
        session, site_id=site.id, start=rng.start, end=rng.end
    )
    index = await dimension_index(session, site_id=site.id, dimension=dim.value)
    money = filter_store.sum_by_value(index, per_payer, who.keys)
    currency = site.currency
    empty = payment_store.RevenueTotals(0, 0, 0)
    rows = []
    for value, count in visitors.items():
        totals = money.get(value, empty)
        total = totals.new_minor - totals.refund_minor
        rows.append(
            RevenueBreakdownRow(
                value=value,
                visitors=count,
                paying_visitors=totals.paying_visitors,
                new_revenue=to_major(totals.new_minor, currency),
                refund_revenue=to_major(totals.refund_minor, currency),
                total_revenue=to_major(total, currency),
                conversion_rate=conversion_rate(totals.paying_visitors, count),
                revenue_per_visitor=per_visitor(total, count, currency),
            )
        )
    rows.sort(key=lambda r: (-r.total_revenue, -r.visitors, _value_order(r.value)))
    return Breakdown(rng, dim, currency, page_size, skip, rows[skip : skip + page_size])


async def goal_breakdowns(
    session: AsyncSession,
    *,
    site_id: str,
    goal_ids: Sequence[int | None],
    rng: TimeRange,
    dimension: object,
    filters: Sequence[Filter] = (),
    limit: object = None,
    offset: object = None,
) -> dict[int | None, list[GoalBreakdownRow]]:
    """Breakdown rows of several goals at once (None = a goal never recorded: zeros)."""
    dim = parse_dimension(dimension)
    page_size, skip = validation.limit(limit), validation.offset(offset)
    who = await audience(session, site_id=site_id, rng=rng, filters=filters)
    visitors = await _visitors_per_value(session, site_id, dim, who)
    known = [goal for goal in dict.fromkeys(goal_ids) if goal is not None]
    start, end = await active_window(session, site_id=site_id, rng=rng)
    groups = await filter_store.keys_by_value(
        session, site_id=site_id, dimension=dim.value, among=who.active
    )
    completions = await goal_store.completions_per_value(
        session, site_id=site_id, goal_ids=known, start=start, end=end, groups=groups
    )
    pages: dict[int | None, list[GoalBreakdownRow]] = {}
    for goal in dict.fromkeys(goal_ids):
        per_value = completions.get(goal, {}) if goal is not None else {}
        rows = []
        for value, count in visitors.items():
            uniques, total = per_value.get(value, (0, 0))
            rows.append(
                GoalBreakdownRow(
                    value=value,
                    visitors=count,
                    unique_visitors=uniques,
                    completion_count=total,
                    conversion_rate=conversion_rate(uniques, count),
                )
            )
        rows.sort(key=lambda r: (-r.completion_count, -r.unique_visitors, _value_order(r.value)))
        pages[goal] = rows[skip : skip + page_size]
    return pages


async def goal_breakdown(
    session: AsyncSession,
    *,
    site: Site,
    name: object,
    period: Period,
    dimension: object,
    filters: Sequence[Filter] = (),
    limit: object = None,
    offset: object = None,
) -> tuple[str, Breakdown[GoalBreakdownRow]]:
    """One goal's breakdown: completion_count desc, unique_visitors desc, value asc (null last)."""
    goal_name = validation.normalize_goal_name(name)
    dim = parse_dimension(dimension)
    rng = period.resolve()
    page_size, skip = validation.limit(limit), validation.offset(offset)
    goal = await goal_store.goal_id(session, site_id=site.id, name=goal_name)
    pages = await goal_breakdowns(
        session,
        site_id=site.id,
        goal_ids=[goal],
        rng=rng,
        dimension=dim,
        filters=filters,
        limit=page_size,
        offset=skip,
    )
    return goal_name, Breakdown(rng, dim, site.currency, page_size, skip, pages[goal])

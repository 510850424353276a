"""Visitor filters: which visitor keys of a site match a set of first-touch filters.

Two forms of the same set. ``keys`` is a bitmap computed from the per-value bitmaps of
``storage.dimensions`` (``is``: a union; ``is_not``: the site's keys minus that union, null kept
unless named; ``contains``: the union over the values that match), which is what counting
reads use. ``where`` is the same set as a condition over ``visitor`` for the reads that stay in
SQL (completion pages, revenue sums, breakdown joins); ``applies_to`` tests another table's
visitor key with a correlated ``EXISTS`` on the visitor's primary key, so its cost follows the
outer rows (a range's payments), not the site's visitors.

``contains`` is resolved first against the dimension's distinct values (few: sources,
countries, devices...) with Python's ``casefold``, so it is case-insensitive the same way on
SQLite (whose ``lower`` is ASCII-only) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyroaring import BitMap
from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.filters import Filter, FilterOperator, matches
from datasaas.storage.dimensions import DimensionIndex, dimension_index, dimension_indexes
from datasaas.storage.models import Visitor
from datasaas.storage.payments import RevenueTotals
from datasaas.storage.revenue_rollups import PayerRevenue


def dimension_column(dimension: str) -> Any:
    """The visitor column holding a dimension."""
    return col(getattr(Visitor, dimension))


def _values_condition(column: Any, values: Sequence[str | None], negate: bool) -> Any:
    known = [value for value in values if value is not None]
    with_null = len(known) != len(values)
    if not negate:
        parts = []
        if known:
            parts.append(column.in_(known))
        if with_null:
            parts.append(column.is_(None))
        return or_(*parts) if parts else false()
    if with_null:
        return and_(column.is_not(None), column.not_in(known)) if known else column.is_not(None)
    return or_(column.is_(None), column.not_in(known)) if known else true()


def _matching(index: DimensionIndex, flt: Filter) -> BitMap:
    """The keys of one dimension's index that match one filter."""
    if flt.operator is FilterOperator.CONTAINS:
        hits = [value for value in index.values if value is not None and matches(flt, value)]
        return BitMap.union(*(index.values[value] for value in hits)) if hits else BitMap()
    named = [index.values[value] for value in flt.values if value in index.values]
    union = BitMap.union(*named) if named else BitMap()
    if flt.operator is FilterOperator.IS_NOT:
        return index.keys() - union
    return union


@dataclass(frozen=True, slots=True)
class VisitorFilter:
    """The visitors of one site matching every filter (a condition over ``visitor``)."""

    site_id: str
    where: ColumnElement[bool]
    filters: tuple[Filter, ...] = ()

    def applies_to(self, visitor_id: Any) -> ColumnElement[bool]:
        """A condition on another table's visitor key column: the visitor matches."""
        # A correlated scalar subquery, not ``EXISTS``/``IN``: PostgreSQL turns those into a
        # semi-join that may scan every matching visitor; a scalar subquery is evaluated per
        # outer row through the visitor primary key, on both backends.
        match = (
            select(self.where)
            .where(col(Visitor.id) == col(visitor_id), col(Visitor.site_id) == self.site_id)
            .correlate_except(Visitor)
            .scalar_subquery()
        )
        return match.is_(True)

    async def keys(self, session: AsyncSession) -> BitMap:
        """The matching visitor keys (from the per-value bitmaps, brought up to date)."""
        indexes = await dimension_indexes(
            session,
            site_id=self.site_id,
            dimensions=[flt.dimension.value for flt in self.filters],
        )
        found: BitMap | None = None
        for flt in self.filters:
            keys = _matching(indexes[flt.dimension.value], flt)
            found = keys if found is None else found & keys
        return found if found is not None else BitMap()


async def visitor_filter(
    session: AsyncSession, *, site_id: str, filters: Sequence[Filter]
) -> VisitorFilter | None:
    """The SQL form of ``filters`` for a site (None when there are none: every visitor)."""
    if not filters:
        return None
    conditions = []
    for flt in filters:
        column = dimension_column(flt.dimension.value)
        if flt.operator is FilterOperator.CONTAINS:
            index = await dimension_index(session, site_id=site_id, dimension=flt.dimension.value)
            hits = [value for value in index.values if value is not None and matches(flt, value)]
            conditions.append(column.in_(hits) if hits else false())
        else:
            negate = flt.operator is FilterOperator.IS_NOT
            conditions.append(_values_condition(column, flt.values, negate))
    return VisitorFilter(site_id, and_(*conditions), tuple(filters))


async def visitors_per_value(
    session: AsyncSession, *, site_id: str, dimension: str, among: BitMap
) -> dict[str | None, int]:
    """How many of the visitor keys ``among`` have each value of ``dimension`` (None = no
    value); values with none of them are left out. Intersection cardinalities, no copies."""
    index = await dimension_index(session, site_id=site_id, dimension=dimension)
    counts = {value: keys.intersection_cardinality(among) for value, keys in index.values.items()}
    return {value: count for value, count in counts.items() if count}


async def keys_by_value(
    session: AsyncSession, *, site_id: str, dimension: str, among: BitMap
) -> dict[str | None, BitMap]:
    """The visitor keys of ``among`` per value of ``dimension``; values with none left out."""
    index = await dimension_index(session, site_id=site_id, dimension=dimension)
    narrowed = {value: keys & among for value, keys in index.values.items()}
    return {value: keys for value, keys in narrowed.items() if keys}


def sum_by_value(
    index: DimensionIndex, revenue: PayerRevenue, among: BitMap | None
) -> dict[str | None, RevenueTotals]:
    """A range's revenue per visitor summed per value of the index's dimension (visitors in
    ``among`` only, when given); values without any such visitor are left out."""
    amounts = revenue.columns()
    payers = BitMap(amounts.keys)
    if among is not None:
        payers &= among
    # Each visitor has one value: number the values, map each payer to its value's number
    # (bitmap intersections), then walk the amounts once.
    slot_of: dict[int, int] = {}
    groups: list[tuple[str | None, BitMap]] = []
    for value, keys in index.values.items():
        hits = keys & payers
        if hits:
            slot_of.update(dict.fromkeys(hits, len(groups)))
            groups.append((value, hits))
    new = [0] * len(groups)
    refund = [0] * len(groups)
    for key, paid, refunded in zip(amounts.keys, amounts.new, amounts.refund, strict=True):
        slot = slot_of.get(key)
        if slot is not None:
            new[slot] += paid
            refund[slot] += refunded
    return {
        value: RevenueTotals(new[slot], refund[slot], hits.intersection_cardinality(revenue.payers))
        for slot, (value, hits) in enumerate(groups)
    }

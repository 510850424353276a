"""Visitor filters in SQL: which visitor keys of a site match a set of first-touch filters.

``contains`` is resolved first against the dimension's distinct values (few: sources,
countries, devices...) with Python's ``casefold``, so it is case-insensitive the same way on
SQLite (whose ``lower`` is ASCII-only) and PostgreSQL; every filter then becomes an ``IN`` test
on a visitor column, evaluated by the database.
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
from datasaas.storage.models import Visitor
from datasaas.storage.sql import aggregate_ids, parse_ids


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


@dataclass(frozen=True, slots=True)
class VisitorFilter:
    """The visitors of one site matching every filter (a condition over ``visitor``)."""

    site_id: str
    where: ColumnElement[bool]

    def applies_to(self, visitor_id: Any) -> ColumnElement[bool]:
        """A condition on another table's visitor key column: the visitor matches."""
        return col(visitor_id).in_(
            select(col(Visitor.id)).where(col(Visitor.site_id) == self.site_id, self.where)
        )

    async def keys(self, session: AsyncSession) -> BitMap:
        """The matching visitor keys."""
        found = await session.scalar(
            select(aggregate_ids(session, col(Visitor.id))).where(
                col(Visitor.site_id) == self.site_id, self.where
            )
        )
        return BitMap(parse_ids(found))


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
            distinct = select(column).distinct()
            rows = await session.execute(
                distinct.where(col(Visitor.site_id) == site_id, column.is_not(None))
            )
            hits = [value for value in rows.scalars() if matches(flt, value)]
            conditions.append(column.in_(hits) if hits else false())
        else:
            negate = flt.operator is FilterOperator.IS_NOT
            conditions.append(_values_condition(column, flt.values, negate))
    return VisitorFilter(site_id, and_(*conditions))


async def visitors_by_value(
    session: AsyncSession, *, site_id: str, dimension: str, visitors: VisitorFilter | None
) -> dict[str | None, BitMap]:
    """The site's visitor keys grouped by their value of ``dimension`` (None = no value)."""
    column = dimension_column(dimension)
    query = (
        select(column, aggregate_ids(session, col(Visitor.id)))
        .where(col(Visitor.site_id) == site_id)
        .group_by(column)
    )
    if visitors is not None:
        query = query.where(visitors.where)
    rows = (await session.execute(query)).all()
    return {value: BitMap(parse_ids(keys)) for value, keys in rows}

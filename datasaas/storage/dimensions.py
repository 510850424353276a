"""Which visitor keys of a site have each value of a first-touch dimension: exact, fast.

A :class:`DimensionIndex` holds, per value of one dimension (None = no value), the roaring bitmap
of the site's visitor keys with that value. It is built once per process from the ``visitor``
table, then kept exact by reading only what may have changed since, on every read:

* rows with ``id > high`` (visitors created since; ``high`` is the largest id the index has
  looked at, of any site);
* ``holes``: ids at or below ``high`` that no read has seen yet. Ids are unique and never
  reused while the index lives, so a row that becomes visible later (a transaction that was
  still open, a PostgreSQL sequence value taken before a smaller one committed) can only have an
  id above ``high`` or in ``holes``; ids that turn out to belong to another site, or that never
  commit (rolled back, burned by ``ON CONFLICT DO NOTHING``), stay cheap to look up;
* ``pending``: visitors first seen server-side (a goal or a payment) with no pageview yet.

The server-side-first rule makes this exact without any write-path hook: a visitor's
attributes go from all-null (``first_pageview_at`` null) to their final values exactly once
(``set_first_touches`` only writes while ``first_pageview_at`` is null) and never change after.
So a visitor seen with a first pageview is final forever; a pending one is re-read until it is
not. Merging a row is idempotent and order-free: a pending row never moves a final visitor
back. No grace period is needed, since nothing is assumed about rows not yet seen.

The index lives in memory, per ``Database`` (keyed by its activity cache object), per site and
dimension; a session not made by ``Database`` builds a fresh index every time.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.activity import CACHE_KEY
from datasaas.storage.models import Visitor
from datasaas.storage.sql import aggregate_ids, parse_ids

_IN_CHUNK: Final = 500
"""Ids per ``IN`` list when re-reading holes and pending visitors."""

_MAX_LOOKUPS: Final = 20_000
"""Above this many holes, other sites' ids are dropped by one scan instead of ``IN`` lists."""


def _column(dimension: str) -> Any:
    return col(getattr(Visitor, dimension))


@dataclass(slots=True)
class DimensionIndex:
    """The visitor keys per value of one dimension of one site (see the module docstring)."""

    site_id: str
    dimension: str
    values: dict[str | None, BitMap] = field(default_factory=dict)
    high: int = 0
    holes: BitMap = field(default_factory=BitMap)
    pending: BitMap = field(default_factory=BitMap)
    known: BitMap = field(default_factory=BitMap)

    def keys(self) -> BitMap:
        """Every visitor key of the site that the index knows (all values, null included)."""
        return self.known

    def _place(self, key: int, value: str | None) -> None:
        self.values.setdefault(value, BitMap()).add(key)

    def merge(self, rows: Iterable[tuple[int, bool, bool, str | None]], upto: int) -> None:
        """Merge re-read rows: (id, of this site, still pending, value); every id up to ``upto``
        was looked at (above the old ``high``, or a hole, or pending) by the same read."""
        found = BitMap()
        for key, ours, waiting, value in rows:
            found.add(key)
            if not ours:
                continue
            if waiting:
                if key not in self.known:
                    self.known.add(key)
                    self.pending.add(key)
                    self._place(key, None)
                continue
            if key in self.known and key not in self.pending:
                continue  # final already: attributes never change once set
            if key in self.pending:
                self.pending.discard(key)
                nulls = self.values.get(None)
                if nulls is not None:
                    nulls.discard(key)
                    if not nulls:
                        del self.values[None]
            self.known.add(key)
            self._place(key, value)
        if upto > self.high:
            self.holes.add_range(self.high + 1, upto + 1)
            self.high = upto
        self.holes -= found
        self.holes -= self.known


async def _build(session: AsyncSession, site_id: str, dimension: str) -> DimensionIndex:
    """A full index from one grouped scan of the site's visitors."""
    column = _column(dimension)
    waiting = col(Visitor.first_pageview_at).is_(None)
    rows = await session.execute(
        select(column, waiting, aggregate_ids(session, col(Visitor.id)))
        .where(col(Visitor.site_id) == site_id)
        .group_by(column, waiting)
    )
    index = DimensionIndex(site_id, dimension)
    for value, pending, ids in rows.all():
        keys = BitMap(parse_ids(ids))
        index.known |= keys
        if pending:
            index.pending |= keys
            index.values.setdefault(None, BitMap()).update(keys)
        else:
            index.values.setdefault(value, BitMap()).update(keys)
    # Ids below the largest one seen that this scan did not see: other sites' visitors, or rows
    # still invisible. Drop the other sites' ones now so that reads re-check only the rest.
    index.high = index.known.max() if index.known else 0
    if index.high:
        index.holes.add_range(1, index.high + 1)
        index.holes -= index.known
    if len(index.holes) > _MAX_LOOKUPS:
        others = await session.scalar(
            select(aggregate_ids(session, col(Visitor.id))).where(
                col(Visitor.site_id) != site_id, col(Visitor.id) <= index.high
            )
        )
        index.holes -= BitMap(parse_ids(others))
    return index


async def _refresh(session: AsyncSession, index: DimensionIndex) -> None:
    """Bring an index up to date: re-read rows above ``high``, holes and pending visitors."""
    column = _column(dimension=index.dimension)
    recheck = list(index.holes | index.pending)
    conditions = [col(Visitor.id) > index.high]
    conditions += [
        col(Visitor.id).in_(recheck[first : first + _IN_CHUNK])
        for first in range(0, len(recheck), _IN_CHUNK)
    ]
    rows = await session.execute(
        select(
            col(Visitor.id),
            col(Visitor.site_id) == index.site_id,
            col(Visitor.first_pageview_at).is_(None),
            column,
        ).where(or_(*conditions))
    )
    found = [(int(key), bool(ours), bool(pending), value) for key, ours, pending, value in rows]
    upto = max((key for key, *_ in found), default=index.high)
    index.merge(found, upto)


class _Indexes:
    """The indexes of one database: per (site, dimension), built once, one build at a time."""

    MAX_INDEXES = 256

    def __init__(self) -> None:
        self.indexes: dict[tuple[str, str], DimensionIndex] = {}
        self.builds: dict[tuple[str, str], asyncio.Lock] = {}


_BY_DATABASE: weakref.WeakKeyDictionary[Any, _Indexes] = weakref.WeakKeyDictionary()


async def dimension_index(session: AsyncSession, *, site_id: str, dimension: str) -> DimensionIndex:
    """The up-to-date index of one dimension of a site (shared: do not modify its bitmaps)."""
    owner = session.info.get(CACHE_KEY)
    if owner is None:  # a session not made by Database: nothing to keep it in
        return await _build(session, site_id, dimension)
    indexes = _BY_DATABASE.setdefault(owner, _Indexes())
    key = (site_id, dimension)
    index = indexes.indexes.get(key)
    if index is None:
        lock = indexes.builds.setdefault(key, asyncio.Lock())
        async with lock:
            index = indexes.indexes.get(key)
            if index is None:
                index = await _build(session, site_id, dimension)
                if len(indexes.indexes) >= indexes.MAX_INDEXES:
                    indexes.indexes.pop(next(iter(indexes.indexes)))
                indexes.indexes[key] = index
                return index
    await _refresh(session, index)
    return index


async def dimension_indexes(
    session: AsyncSession, *, site_id: str, dimensions: Sequence[str]
) -> dict[str, DimensionIndex]:
    """Up-to-date indexes of several dimensions (each read once)."""
    return {
        dimension: await dimension_index(session, site_id=site_id, dimension=dimension)
        for dimension in dict.fromkeys(dimensions)
    }

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

So that a fresh worker does not pay the grouped scan, an index is also kept in
``dimension_snapshot``. Only the warm-up (``warm_index``: after an import, and at start for
every site) loads and stores snapshots, so reads spend no statement on them: it loads the
snapshot into the process (or builds the index) and stores it in the background, through the
activity cache's writer, when none was stored yet or many rows were merged since. A loaded
snapshot is refreshed exactly as above: a snapshot is an index state like any
other, and the same argument holds across processes, provided ids are never reused. SQLite can
reuse the highest ids after their rows are deleted (a site's cascade); such a reused id of this
site, at or below ``high``, would be neither above ``high`` nor a hole. So a loaded snapshot is
used only when, after its refresh, the site's visitors with ``id <= high`` (one count on the
``visitor`` index) are exactly the keys it knows; otherwise the index is rebuilt.
"""

from __future__ import annotations

import asyncio
import json
import struct
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.activity import CACHE_KEY, ActivityCache
from datasaas.storage.engine import background_context
from datasaas.storage.models import DimensionSnapshot, Visitor
from datasaas.storage.sql import aggregate_ids, dialect_insert, parse_ids

_IN_CHUNK: Final = 500
"""Ids per ``IN`` list when re-reading holes and pending visitors."""

_MAX_LOOKUPS: Final = 20_000
"""Above this many holes, other sites' ids are dropped by one scan instead of ``IN`` lists."""

_SNAPSHOT_AFTER: Final = 20_000
"""Store the index again once this many of the site's rows were merged into it since."""

_HEADER: Final = struct.Struct("<I")

_COUNTS_KEY: Final = "datasaas.dimension_counts"
"""``session.info`` key: the site's visitor counts up to a ``high``, per session."""


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
    unsaved: int = 0
    """Rows of the site merged since the index was last stored as a snapshot."""
    stored: bool = False
    """Whether a snapshot of this index was stored (or it was loaded from one)."""

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
            self.unsaved += 1
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


def encode_snapshot(index: DimensionIndex) -> bytes:
    """The index's values, holes and pending keys as bytes (``high`` is stored beside)."""
    blobs = [keys.serialize() for keys in index.values.values()]
    holes, pending = index.holes.serialize(), index.pending.serialize()
    header = json.dumps(
        {
            "values": [[value, len(blob)] for value, blob in zip(index.values, blobs, strict=True)],
            "holes": len(holes),
            "pending": len(pending),
        }
    ).encode()
    return b"".join([_HEADER.pack(len(header)), header, *blobs, holes, pending])


def decode_snapshot(site_id: str, dimension: str, high: int, state: bytes) -> DimensionIndex:
    """The inverse of ``encode_snapshot``."""
    (length,) = _HEADER.unpack_from(state)
    offset = _HEADER.size + length
    header = json.loads(state[_HEADER.size : offset])

    def take(size: int) -> BitMap:
        nonlocal offset
        keys = BitMap.deserialize(state[offset : offset + size])
        offset += size
        return keys

    index = DimensionIndex(site_id, dimension, high=high)
    for value, size in header["values"]:
        index.values[value] = take(size)
    index.holes = take(header["holes"])
    index.pending = take(header["pending"])
    index.known = BitMap.union(*index.values.values()) if index.values else BitMap()
    return index


async def _load(session: AsyncSession, site_id: str, dimension: str) -> DimensionIndex | None:
    """The stored snapshot brought up to date, or None (none stored, or ids were reused)."""
    row = (
        await session.execute(
            select(col(DimensionSnapshot.high), col(DimensionSnapshot.state)).where(
                col(DimensionSnapshot.site_id) == site_id,
                col(DimensionSnapshot.dimension) == dimension,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    index = decode_snapshot(site_id, dimension, int(row[0]), bytes(row[1]))
    await _refresh(session, index)
    # Every visitor of the site up to ``high`` must be known (see the module docstring). The
    # count is shared by the session's loads (a warm-up loads every dimension at one ``high``).
    counted: dict[tuple[str, int], int] = session.info.setdefault(_COUNTS_KEY, {})
    visitors = counted.get((site_id, index.high))
    if visitors is None:
        visitors = await session.scalar(
            select(func.count()).where(
                col(Visitor.site_id) == site_id, col(Visitor.id) <= index.high
            )
        )
        counted[(site_id, index.high)] = int(visitors or 0)
    if visitors != len(index.known):
        return None
    index.stored = True
    return index


def _store_later(session: AsyncSession, index: DimensionIndex) -> None:
    """Store a snapshot of the index in the background (a newer stored ``high`` wins)."""
    cache: ActivityCache | None = session.info.get(CACHE_KEY)
    if cache is None:
        return
    row = {
        "site_id": index.site_id,
        "dimension": index.dimension,
        "high": index.high,
        "state": encode_snapshot(index),
    }
    index.unsaved = 0
    index.stored = True

    async def store(writer: AsyncSession) -> None:
        statement = dialect_insert(writer)(DimensionSnapshot).values([row])
        await writer.execute(
            statement.on_conflict_do_update(
                index_elements=["site_id", "dimension"],
                set_={"high": statement.excluded.high, "state": statement.excluded.state},
                where=col(DimensionSnapshot.high) <= statement.excluded.high,
            )
        )

    cache.store_later_with(
        store,
        what=f"{index.dimension} bitmaps for {index.site_id}",
        context=background_context(),
    )


class _Indexes:
    """The indexes of one database: per (site, dimension), built once, one build at a time."""

    MAX_INDEXES = 256

    def __init__(self) -> None:
        self.indexes: dict[tuple[str, str], DimensionIndex] = {}
        self.builds: dict[tuple[str, str], asyncio.Lock] = {}


_BY_DATABASE: weakref.WeakKeyDictionary[Any, _Indexes] = weakref.WeakKeyDictionary()


async def _index(
    session: AsyncSession, site_id: str, dimension: str, *, load: bool
) -> DimensionIndex:
    """The up-to-date index, kept in memory per database; when not there yet, loaded from its
    snapshot (``load``) or built. One load or build per (site, dimension) at a time."""
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
                index = await _load(session, site_id, dimension) if load else None
                if index is None:
                    index = await _build(session, site_id, dimension)
                if len(indexes.indexes) >= indexes.MAX_INDEXES:
                    indexes.indexes.pop(next(iter(indexes.indexes)))
                indexes.indexes[key] = index
                return index
    await _refresh(session, index)
    return index


async def dimension_index(session: AsyncSession, *, site_id: str, dimension: str) -> DimensionIndex:
    """The up-to-date index of one dimension of a site (shared: do not modify its bitmaps)."""
    return await _index(session, site_id, dimension, load=False)


async def warm_index(session: AsyncSession, *, site_id: str, dimension: str) -> None:
    """Bring an index into this process from its snapshot (or build it), and store the
    snapshot when none was stored yet or many rows were merged since: the warm-up's part, so
    that reads never spend statements on snapshots."""
    index = await _index(session, site_id, dimension, load=True)
    if not index.stored or index.unsaved >= _SNAPSHOT_AFTER:
        _store_later(session, index)


async def dimension_indexes(
    session: AsyncSession, *, site_id: str, dimensions: Sequence[str]
) -> dict[str, DimensionIndex]:
    """Up-to-date indexes of several dimensions (each read once)."""
    return {
        dimension: await dimension_index(session, site_id=site_id, dimension=dimension)
        for dimension in dict.fromkeys(dimensions)
    }

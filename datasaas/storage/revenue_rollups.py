"""Revenue at columnar speed: per finished UTC hour and day, new revenue, refunds and payers.

Unfiltered revenue reads split their range as the activity bitmaps do (``periods.plan_range``:
finished whole UTC days, then finished whole hours, then raw windows) and answer from
``revenue_rollup`` rows plus the payments of the raw windows. A rollup holds the sums of
``reporting_amount_minor`` (one-time + recurring; refunds) and a roaring bitmap of the visitor
keys with a non-refund payment of ``amount_minor > 0``, so distinct paying visitors over a range
are a union of bitmaps, exact.

Invalidation is the activity bitmaps' own: a rollup carries the ``hour_version`` of its hour
(for a day, the sum over its 24 hours) at the moment its rows were read, and is used only while
that version is current. Every payment write calls ``visitors.mark_active`` and every delete
``visitors.unmark_active``, both of which ``touch_hour`` the payment's hour when that hour is
over; payments are never updated in place. So a payment, refund, backdated payment or delete
landing in a cached hour makes that hour (and its day) stale, with no new statement on the write
path. Writes to the current hour do not bump, and periods are only cached once they ended more
than ``CACHE_GRACE`` ago, longer than any write transaction lives. Versions are read before the
rows a rollup is built from, so a write committed in between leaves it stale from birth.

Filtered reads and breakdowns use the same rows: each also holds ``payer_amounts``, per visitor
with any payment in the period, that visitor's new revenue and refunds (``PayerAmounts``). So
revenue of any set of visitor keys (a filter's, a dimension value's) is a sum over the range's
periods of the amounts of the keys in that set, plus the raw edges' payments, independent of
how many payments the range holds. Same row, same version, same invalidation.

Built rollups are stored in the background by the database's ``ActivityCache`` (one store at a
time, on a write session of its own); requests needing the same stale periods share one build.
"""

from __future__ import annotations

import bisect
import sys
from array import array
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.periods import (
    CACHE_GRACE,
    DAY,
    HOUR,
    MICROSECOND,
    Window,
    instant_of,
    plan_range,
    runs,
    seconds_of,
)
from datasaas.storage import payments as payment_store
from datasaas.storage.activity import CACHE_KEY, ActivityCache, period_versions
from datasaas.storage.engine import background_context
from datasaas.storage.models import HourVersion, Payment, RevenueRollup
from datasaas.storage.sql import dialect_insert

REFUND = "refund"

MAX_MRR_MEMO = 1024
"""MRR answers kept per database (instants a dashboard asked about)."""

UNCLIPPED_SPAN = timedelta(days=3 * 366)
"""Longer ranges are first narrowed to their first and last payment, so that planning a range
over every supported year costs the days that hold payments, not 3.6 million."""

MAX_RAW_WINDOWS = 64
"""A series whose buckets leave more raw windows than this (hourly buckets in a half-hour zone)
is grouped in SQL instead: each window costs two bound parameters."""


_WIDE: Final = b"W"
"""``payer_amounts`` format tag: decimal text, for sums that do not fit in 64 bits."""
_PACKED: Final = b"P"
"""``payer_amounts`` format tag: little-endian arrays, uint32 keys then int64 new and refunds
(visitor keys are 32-bit, as in every roaring bitmap of the project)."""
_KEY: Final = "I"  # C unsigned int: 4 bytes on every platform CPython runs on (LP64, LLP64)
_SUM: Final = "q"
_PACKED_BYTES_PER_PAYER: Final = 4 + 8 + 8


@dataclass(frozen=True, slots=True)
class PayerAmounts:
    """Per visitor key (ascending) with a payment in a period: new revenue and refunds, in
    minor units. A visitor with only refunds or zero amounts is listed too (payers are not
    decided here: the rollup's ``payers`` bitmap says who paid)."""

    keys: Sequence[int]
    new: Sequence[int]
    refund: Sequence[int]

    @classmethod
    def of(cls, sums: dict[int, list[int]]) -> PayerAmounts:
        """From ``key -> [new, refund]`` (packed arrays unless a sum needs more than 64 bits)."""
        keys = sorted(sums)
        new = [sums[key][0] for key in keys]
        refund = [sums[key][1] for key in keys]
        try:
            return cls(array(_KEY, keys), array(_SUM, new), array(_SUM, refund))
        except OverflowError:
            return cls(array(_KEY, keys), new, refund)

    def add_to(self, sums: dict[int, list[int]]) -> None:
        """Add these amounts into ``key -> [new, refund]``."""
        for key, new, refund in zip(self.keys, self.new, self.refund, strict=True):
            found = sums.get(key)
            if found is None:
                sums[key] = [new, refund]
            else:
                found[0] += new
                found[1] += refund

    def among(self, keys: BitMap) -> tuple[int, int]:
        """(new, refunds) of the visitors in ``keys``."""
        new = refund = 0
        for key, paid, refunded in zip(self.keys, self.new, self.refund, strict=True):
            if key in keys:
                new += paid
                refund += refunded
        return new, refund

    def serialize(self) -> bytes:
        """Compact bytes: packed arrays (32-bit keys, 64-bit sums), or decimal text when a sum
        needs more than 64 bits."""
        try:
            columns = [array(_KEY, self.keys), array(_SUM, self.new), array(_SUM, self.refund)]
        except OverflowError:
            text = ";".join(",".join(map(str, v)) for v in (self.keys, self.new, self.refund))
            return _WIDE + text.encode("ascii")
        if sys.byteorder == "big":
            for column in columns:
                column.byteswap()
        return _PACKED + b"".join(column.tobytes() for column in columns)

    @classmethod
    def deserialize(cls, blob: bytes) -> PayerAmounts:
        """The inverse of ``serialize``."""
        tag, body = bytes(blob[:1]), bytes(blob[1:])
        if tag == _WIDE:
            parts = body.decode("ascii").split(";")
            keys, new, refund = ([int(v) for v in part.split(",") if v] for part in parts)
            return cls(keys, new, refund)
        if tag != _PACKED:
            raise ValueError(f"unknown payer_amounts format {tag!r}")
        count, rest = divmod(len(body), _PACKED_BYTES_PER_PAYER)
        if rest:
            raise ValueError("truncated payer_amounts")
        columns = []
        offset = 0
        for code in (_KEY, _SUM, _SUM):
            column = array(code)
            width = count * column.itemsize
            column.frombytes(body[offset : offset + width])
            offset += width
            if sys.byteorder == "big":
                column.byteswap()
            columns.append(column)
        return cls(columns[0], columns[1], columns[2])


EMPTY_AMOUNTS: Final = PayerAmounts(array(_KEY), array(_SUM), array(_SUM))


@dataclass(slots=True)
class Rollup:
    """Revenue of a period or a range, in the site's minor units."""

    new_minor: int = 0
    refund_minor: int = 0
    payers: BitMap = field(default_factory=BitMap)
    amounts: PayerAmounts | None = None
    """Per payer; None when not read (reads that need no per-visitor amounts)."""

    def add(self, other: Rollup) -> None:
        """Merge another period's revenue into this one (sums and payers, not ``amounts``)."""
        self.new_minor += other.new_minor
        self.refund_minor += other.refund_minor
        self.payers |= other.payers


@dataclass(slots=True)
class PayerRevenue:
    """Revenue of a range per visitor: the periods' per-payer amounts, the raw edges' sums
    and the keys of the visitors who paid (a non-refund payment of amount > 0)."""

    parts: list[PayerAmounts] = field(default_factory=list)
    payers: BitMap = field(default_factory=BitMap)

    def totals(self, among: BitMap) -> tuple[int, int, int]:
        """(new, refunds, distinct payers) of the visitors in ``among``."""
        new = refund = 0
        for part in self.parts:
            part_new, part_refund = part.among(among)
            new += part_new
            refund += part_refund
        return new, refund, self.payers.intersection_cardinality(among)

    def columns(self) -> PayerAmounts:
        """Every part's amounts, concatenated (a visitor paying in several periods appears once
        per period): what per-value sums walk once."""
        if len(self.parts) == 1:
            return self.parts[0]
        packed = all(isinstance(part.new, array) for part in self.parts)
        keys: MutableSequence[int] = array(_KEY)
        # Python ints when a part's sums needed more than 64 bits (the "wide" format).
        new: MutableSequence[int] = array(_SUM) if packed else []
        refund: MutableSequence[int] = array(_SUM) if packed else []
        for part in self.parts:
            keys.extend(part.keys)
            new.extend(part.new)
            refund.extend(part.refund)
        return PayerAmounts(keys, new, refund)


Rollups = dict[int, Rollup]
"""period -> rollup"""


# -- building from payments ------------------------------------------------------------------


def _payment_rows(site_id: str, windows: Sequence[Window]) -> Any:
    paid_at = col(Payment.paid_at)
    return select(
        paid_at,
        col(Payment.payment_type),
        col(Payment.amount_minor),
        col(Payment.visitor_id),
        col(Payment.reporting_amount_minor),
    ).where(
        col(Payment.site_id) == site_id,
        or_(*(and_(paid_at >= start, paid_at < end) for start, end in windows)),
    )


def _add_payment(
    rollup: Rollup,
    kind: str,
    amount: int,
    visitor: int,
    reporting: int,
    sums: dict[int, list[int]] | None = None,
) -> None:
    """Add one payment row to a rollup (and to ``key -> [new, refund]`` when given)."""
    refund = kind == REFUND
    if refund:
        rollup.refund_minor += reporting
    else:
        rollup.new_minor += reporting
        if amount > 0:
            rollup.payers.add(visitor)
    if sums is not None:
        found = sums.setdefault(visitor, [0, 0])
        found[1 if refund else 0] += reporting


async def _build_hours(session: AsyncSession, site_id: str, hours: Sequence[int]) -> Rollups:
    """Rollups of ``hours`` computed from the payments (the hour taken in Python, exactly)."""
    built: Rollups = {hour: Rollup() for hour in hours}
    sums: dict[int, dict[int, list[int]]] = {hour: {} for hour in hours}
    windows = [(instant_of(first * HOUR), instant_of(stop * HOUR)) for first, stop in runs(hours)]
    rows = await session.execute(_payment_rows(site_id, windows))
    for paid_at, kind, amount, visitor, reporting in rows.all():
        hour = seconds_of(paid_at) // HOUR
        _add_payment(built[hour], kind, amount, visitor, reporting, sums[hour])
    for hour, rollup in built.items():
        rollup.amounts = PayerAmounts.of(sums[hour]) if sums[hour] else EMPTY_AMOUNTS
    return built


def _days_from_hours(days: Sequence[int], hours: Rollups) -> Rollups:
    result: Rollups = {day: Rollup() for day in days}
    sums: dict[int, dict[int, list[int]]] = {day: {} for day in days}
    for hour, rollup in hours.items():
        day = hour * HOUR // DAY
        result[day].add(rollup)
        assert rollup.amounts is not None  # hours are read or built with their amounts
        rollup.amounts.add_to(sums[day])
    for day, rollup in result.items():
        rollup.amounts = PayerAmounts.of(sums[day]) if sums[day] else EMPTY_AMOUNTS
    return result


async def _store(
    session: AsyncSession, site_id: str, span: int, built: Rollups, versions: dict[int, int]
) -> None:
    """Upsert built rollups; a row already cached at the same or a newer version wins."""
    rows = [
        {
            "site_id": site_id,
            "span": span,
            "period": period,
            "version": versions[period],
            "new_minor": rollup.new_minor,
            "refund_minor": rollup.refund_minor,
            "payers": rollup.payers.serialize(),
            "payer_amounts": (rollup.amounts or EMPTY_AMOUNTS).serialize(),
        }
        for period, rollup in built.items()
    ]
    insert = dialect_insert(session)
    for first in range(0, len(rows), 500):
        statement = insert(RevenueRollup).values(rows[first : first + 500])
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["site_id", "span", "period"],
                set_={
                    "version": statement.excluded.version,
                    "new_minor": statement.excluded.new_minor,
                    "refund_minor": statement.excluded.refund_minor,
                    "payers": statement.excluded.payers,
                    "payer_amounts": statement.excluded.payer_amounts,
                },
                # A row cached before migration 0010 (no amounts) is filled at the same version.
                where=or_(
                    col(RevenueRollup.version) < statement.excluded.version,
                    and_(
                        col(RevenueRollup.version) == statement.excluded.version,
                        col(RevenueRollup.payer_amounts).is_(None),
                    ),
                ),
            )
        )


# -- cached periods --------------------------------------------------------------------------


async def _cached(
    session: AsyncSession,
    site_id: str,
    span: int,
    periods: Sequence[int],
    *,
    payers: bool,
    amounts: bool = False,
) -> Rollups:
    """Rollups of whole periods: cached, or rebuilt when missing or stale (a day from its
    hours, themselves cached or rebuilt). ``payers=False`` skips reading the bitmaps,
    ``amounts=False`` the per-payer amounts (rebuilt periods always carry both)."""
    if not periods:
        return {}
    # Each row's current version (its hours' versions summed) in the same statement: one
    # round trip for a warm read; stale periods read their versions again before building.
    per_hour = span // HOUR
    period = col(RevenueRollup.period)
    current = (
        select(func.coalesce(func.sum(col(HourVersion.version)), 0))
        .where(
            col(HourVersion.site_id) == col(RevenueRollup.site_id),
            col(HourVersion.hour) >= period * per_hour,
            col(HourVersion.hour) < (period + 1) * per_hour,
        )
        .scalar_subquery()
    )
    columns: list[Any] = [
        period,
        col(RevenueRollup.version),
        current,
        col(RevenueRollup.new_minor),
        col(RevenueRollup.refund_minor),
    ]
    if payers:
        columns.append(col(RevenueRollup.payers))
    if amounts:
        columns.append(col(RevenueRollup.payer_amounts))
    query = select(*columns).where(
        col(RevenueRollup.site_id) == site_id,
        col(RevenueRollup.span) == span,
        or_(*(and_(period >= first, period < stop) for first, stop in runs(periods))),
    )
    result: Rollups = {}
    for row in (await session.execute(query)).all():
        if row[1] != row[2] or (amounts and row[-1] is None):
            continue  # stale, or cached before its amounts were kept: rebuilt below
        bitmap = BitMap.deserialize(row[5]) if payers else BitMap()
        per_payer = PayerAmounts.deserialize(row[-1]) if amounts else None
        result[row[0]] = Rollup(int(row[3]), int(row[4]), bitmap, per_payer)
    stale = [number for number in periods if number not in result]
    if not stale:
        return result
    # Versions first, then the payments they validate (see the module docstring).
    versions = await period_versions(session, site_id=site_id, span=span, periods=stale)

    async def build() -> Rollups:
        if span == HOUR:
            return await _build_hours(session, site_id, stale)
        hours = [hour for day in stale for hour in range(day * 24, day * 24 + 24)]
        hourly = await _cached(session, site_id, HOUR, hours, payers=True, amounts=True)
        return _days_from_hours(stale, hourly)

    cache: ActivityCache | None = session.info.get(CACHE_KEY)
    if cache is None:  # a session not made by Database: compute, cache nothing
        built = await build()
    else:
        stale_versions = tuple(versions[period] for period in stale)
        built = await cache.share(("revenue", site_id, span, tuple(stale), stale_versions), build)
        wanted = dict(versions)

        async def store(writer: AsyncSession) -> None:
            await _store(writer, site_id, span, built, wanted)

        cache.store_later_with(
            store, what=f"revenue rollups for {site_id}", context=background_context()
        )
    result.update(built)
    return result


async def _raw(
    session: AsyncSession, site_id: str, windows: Sequence[Window]
) -> list[tuple[Any, ...]]:
    if not windows:
        return []
    return [tuple(row) for row in (await session.execute(_payment_rows(site_id, windows))).all()]


# -- public reads ----------------------------------------------------------------------------


async def _payments_between(
    session: AsyncSession, site_id: str, start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    """The first and last ``paid_at`` in [start, end] (two index seeks), None when none."""
    paid_at = col(Payment.paid_at)
    where = (col(Payment.site_id) == site_id, paid_at >= start, paid_at <= end)
    row = (
        await session.execute(
            select(
                select(func.min(paid_at)).where(*where).scalar_subquery(),
                select(func.max(paid_at)).where(*where).scalar_subquery(),
            )
        )
    ).one()
    if row[0] is None or row[1] is None:
        return None
    first, last = row[0], row[1]
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    return first, last


async def revenue_in_range(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> Rollup:
    """New revenue, refunds and the paying visitors' keys over every payment in [start, end]."""
    if end - start > UNCLIPPED_SPAN:
        edges = await _payments_between(session, site_id, start, end)
        if edges is None:
            return Rollup()
        start, end = edges
    plan = plan_range(start, end, now or datetime.now(UTC))
    total = Rollup()
    for span, periods in plan.periods.items():
        for rollup in (await _cached(session, site_id, span, periods, payers=True)).values():
            total.add(rollup)
    for _, kind, amount, visitor, reporting in await _raw(session, site_id, plan.raw):
        _add_payment(total, kind, amount, visitor, reporting)
    return total


async def payer_revenue(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> PayerRevenue:
    """Revenue per visitor over every payment in [start, end]: the cached periods' per-payer
    amounts plus the raw edges' payments (what filtered revenue and breakdowns sum)."""
    if end - start > UNCLIPPED_SPAN:
        edges = await _payments_between(session, site_id, start, end)
        if edges is None:
            return PayerRevenue()
        start, end = edges
    plan = plan_range(start, end, now or datetime.now(UTC))
    result = PayerRevenue()
    for span, periods in plan.periods.items():
        cached = await _cached(session, site_id, span, periods, payers=True, amounts=True)
        for rollup in cached.values():
            assert rollup.amounts is not None  # read with amounts=True
            result.parts.append(rollup.amounts)
            result.payers |= rollup.payers
    raw = await _raw(session, site_id, plan.raw)
    if raw:
        edge = Rollup()
        sums: dict[int, list[int]] = {}
        for _, kind, amount, visitor, reporting in raw:
            _add_payment(edge, kind, amount, visitor, reporting, sums)
        result.parts.append(PayerAmounts.of(sums))
        result.payers |= edge.payers
    return result


async def revenue_per_bucket(
    session: AsyncSession,
    *,
    site_id: str,
    bounds: Sequence[tuple[datetime, datetime]],
    now: datetime | None = None,
    among: BitMap | None = None,
) -> list[tuple[int, int]] | None:
    """(new, refunds) in minor units per half-open bucket ``[start, end)`` (ascending, tiling),
    of the payments of the visitors in ``among`` (every payment when None); None when the
    buckets leave too many raw windows (the caller groups in SQL instead)."""
    moment = now or datetime.now(UTC)
    owner: dict[int, dict[int, int]] = {DAY: {}, HOUR: {}}
    raw: list[Window] = []
    if not bounds:
        return []
    low, high = bounds[0][0], bounds[-1][1]
    if high - low > UNCLIPPED_SPAN:
        edges = await _payments_between(session, site_id, low, high - MICROSECOND)
        if edges is None:
            return [(0, 0)] * len(bounds)
        low, high = edges[0], edges[1] + MICROSECOND
    for index, (bucket_start, bucket_end) in enumerate(bounds):
        start, end = max(bucket_start, low), min(bucket_end, high)
        if start >= end:
            continue
        plan = plan_range(start, end - MICROSECOND, moment)
        for span, periods in plan.periods.items():
            owner[span].update(dict.fromkeys(periods, index))
        raw.extend(plan.raw)
        if len(raw) > MAX_RAW_WINDOWS:
            return None
    new = [0] * len(bounds)
    refunds = [0] * len(bounds)
    filtered = among is not None
    for span, bucket_of in owner.items():
        periods = sorted(bucket_of)
        cached = await _cached(session, site_id, span, periods, payers=False, amounts=filtered)
        for period, rollup in cached.items():
            if among is None:
                period_new, period_refunds = rollup.new_minor, rollup.refund_minor
            else:
                assert rollup.amounts is not None  # read with amounts=True
                period_new, period_refunds = rollup.amounts.among(among)
            new[bucket_of[period]] += period_new
            refunds[bucket_of[period]] += period_refunds
    starts = [start for start, _ in bounds]
    for paid_at, kind, _, visitor, reporting in await _raw(session, site_id, raw):
        if among is not None and visitor not in among:
            continue
        index = bisect.bisect_right(starts, paid_at) - 1
        (refunds if kind == REFUND else new)[index] += reporting
    return list(zip(new, refunds, strict=True))


async def build_periods(
    session: AsyncSession, *, site_id: str, span: int, periods: Sequence[int]
) -> None:
    """Make sure the rollups of ``periods`` are cached: build and store the missing or stale
    ones (the warm-up after an import or at start; reads do the same on demand)."""
    await _cached(session, site_id, span, periods, payers=False, amounts=True)


CoveringByPayer = list[tuple[str, int, PayerAmounts]]
"""(interval, count, per covering visitor: summed net amounts in ``new``) per billing group."""


async def _memoised(
    session: AsyncSession, cache: ActivityCache, key: tuple[Any, ...], at: datetime, compute: Any
) -> Any:
    """``await compute()`` remembered per ``key`` while no payment lands at or before ``at``
    (see ``recurring_covering``)."""
    site_id = key[1]
    version = await session.scalar(
        select(func.coalesce(func.sum(col(HourVersion.version)), 0)).where(
            col(HourVersion.site_id) == site_id,
            col(HourVersion.hour) <= seconds_of(at) // HOUR,
        )
    )
    remembered = cache.memo.get(key)
    if remembered is not None and remembered[0] == version:
        return remembered[1]
    answer = await compute()
    cache.memo.pop(key, None)
    cache.memo[key] = (version, answer)
    while len(cache.memo) > MAX_MRR_MEMO:
        del cache.memo[next(iter(cache.memo))]
    return answer


def _covering_among(groups: CoveringByPayer, among: BitMap) -> list[tuple[str, int, int]]:
    return [(interval, count, per.among(among)[0]) for interval, count, per in groups]


async def recurring_covering(
    session: AsyncSession,
    *,
    site_id: str,
    at: datetime,
    now: datetime | None = None,
    among: BitMap | None = None,
) -> list[tuple[str, int, int]]:
    """``payments.recurring_covering`` at ``at``, memoised for past instants: of every payment,
    or (``among``) of the payments of those visitor keys.

    MRR at ``at`` depends only on payments paid at or before ``at``. When ``at`` ended more than
    ``CACHE_GRACE`` ago, each such write (or delete) lands in an hour that is over and bumps
    that hour's version, and versions only grow: so the sum of the site's hour versions up to
    ``at``'s hour, one indexed aggregate over ``hour_version``, tells whether a remembered
    answer still holds. ``at`` within the grace (a range ending now) is always computed.

    A filtered read remembers the covering payments' net amounts per visitor and group (any
    filter of the site shares them) and sums those of the visitors in ``among``: each
    payment's net is floored at 0 before summing, per visitor as in SQL, so the sums agree.
    """

    async def every() -> list[tuple[str, int, int]]:
        return await payment_store.recurring_covering(session, site_id=site_id, at=at)

    async def per_payer() -> CoveringByPayer:
        rows = await payment_store.recurring_covering_by_payer(session, site_id=site_id, at=at)
        by_group: dict[tuple[str, int], dict[int, list[int]]] = {}
        for interval, count, visitor, net in rows:
            by_group.setdefault((interval, count), {})[visitor] = [net, 0]
        return [(i, c, PayerAmounts.of(sums)) for (i, c), sums in by_group.items()]

    cache: ActivityCache | None = session.info.get(CACHE_KEY)
    if cache is None or at >= (now or datetime.now(UTC)) - CACHE_GRACE:
        return await every() if among is None else _covering_among(await per_payer(), among)
    if among is None:
        groups: list[tuple[str, int, int]] = await _memoised(
            session, cache, ("mrr", site_id, at), at, every
        )
        return groups
    memo: CoveringByPayer = await _memoised(
        session, cache, ("mrr-payers", site_id, at), at, per_payer
    )
    return _covering_among(memo, among)

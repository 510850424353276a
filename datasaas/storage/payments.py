"""Queries on payments: lookups for idempotent writes, the revenue aggregates and the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from datasaas.storage.models import Payment, Visitor
from datasaas.storage.outbox import FirstTouch
from datasaas.storage.sql import core_table, epoch_seconds, insert_returning_ids

REFUND = "refund"
RECURRING = "recurring"


@dataclass(frozen=True, slots=True)
class RevenueTotals:
    """Sums over a range, in the site's currency's minor units."""

    new_minor: int
    refund_minor: int
    paying_visitors: int


async def get_payment(
    session: AsyncSession, *, site_id: str, transaction_id: str, for_update: bool = False
) -> Payment | None:
    """Return a payment by its transaction id; ``for_update`` locks it (PostgreSQL)."""
    query = select(Payment).where(
        col(Payment.site_id) == site_id, col(Payment.transaction_id) == transaction_id
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def refunded_minor(session: AsyncSession, *, site_id: str, transaction_id: str) -> int:
    """Total already refunded against a payment, in the payment's own currency."""
    total = await session.scalar(
        select(func.coalesce(func.sum(col(Payment.amount_minor)), 0)).where(
            col(Payment.site_id) == site_id,
            col(Payment.payment_type) == REFUND,
            col(Payment.original_transaction_id) == transaction_id,
        )
    )
    return int(total or 0)


async def insert_payment(session: AsyncSession, payment: Payment) -> bool:
    """Insert a payment; False when its transaction id was taken concurrently."""
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:
        return False
    return True


def _in_range(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(col(Payment.paid_at) >= start, col(Payment.paid_at) <= end)


def _covering(site_id: str, at: datetime, visitors: ColumnElement[bool] | None) -> Any:
    """Recurring payments whose cover holds ``at``: (interval, count, visitor, net), a net
    being the reporting amount less the refunds naming the payment paid up to ``at``."""
    # Refunds are looked up per covering payment (the index on (site_id,
    # original_transaction_id)), instead of grouping every refund the site ever had.
    refund = aliased(Payment)
    refunded = (
        select(func.coalesce(func.sum(col(refund.reporting_amount_minor)), 0))
        .where(
            col(refund.site_id) == site_id,
            col(refund.original_transaction_id) == col(Payment.transaction_id),
            col(refund.payment_type) == REFUND,
            col(refund.paid_at) <= at,
        )
        .scalar_subquery()
    )
    covering: Any = select(
        col(Payment.billing_interval).label("interval"),
        col(Payment.billing_interval_count).label("count"),
        col(Payment.visitor_id).label("visitor"),
        (col(Payment.reporting_amount_minor) - refunded).label("net"),
    ).where(
        col(Payment.site_id) == site_id,
        col(Payment.payment_type) == RECURRING,
        col(Payment.paid_at) <= at,
        col(Payment.covers_until_at) > at,
    )
    if visitors is not None:
        covering = covering.where(visitors)
    return covering.subquery()


async def recurring_covering(
    session: AsyncSession,
    *,
    site_id: str,
    at: datetime,
    visitors: ColumnElement[bool] | None = None,
) -> list[tuple[str, int, int]]:
    """(interval, count, summed net minor units) of recurring payments whose cover holds ``at``.

    A payment's net amount is its reporting amount less refunds naming it (paid up to ``at``),
    never below 0; payments are grouped by billing interval so the caller normalises exactly.
    ``visitors`` narrows the payments by their visitor (a filter condition).
    """
    per_payment = _covering(site_id, at, visitors)
    net = per_payment.c.net
    query = select(
        per_payment.c.interval,
        per_payment.c.count,
        func.sum(case((net > 0, net), else_=0)),
    ).group_by(per_payment.c.interval, per_payment.c.count)
    rows = (await session.execute(query)).all()
    return [(str(row[0]), int(row[1]), int(row[2] or 0)) for row in rows]


async def recurring_covering_by_payer(
    session: AsyncSession, *, site_id: str, at: datetime
) -> list[tuple[str, int, int, int]]:
    """``recurring_covering`` per visitor: (interval, count, visitor key, summed net minor
    units), each payment's net floored at 0 before summing, as there."""
    per_payment = _covering(site_id, at, None)
    net = per_payment.c.net
    query = select(
        per_payment.c.interval,
        per_payment.c.count,
        per_payment.c.visitor,
        func.sum(case((net > 0, net), else_=0)),
    ).group_by(per_payment.c.interval, per_payment.c.count, per_payment.c.visitor)
    rows = (await session.execute(query)).all()
    return [(str(row[0]), int(row[1]), int(row[2]), int(row[3] or 0)) for row in rows]


async def revenue_by_granule(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    granule_seconds: int,
    visitors: ColumnElement[bool] | None = None,
) -> list[tuple[int, bool, int]]:
    """(granule start in Unix seconds, is refund, sum) for [start, end], grouped in SQL."""
    seconds = epoch_seconds(session, col(Payment.paid_at))
    granule = seconds // granule_seconds if granule_seconds > 1 else seconds
    is_refund = col(Payment.payment_type) == REFUND
    query = (
        select(
            granule.label("granule"),
            is_refund.label("refund"),
            func.sum(col(Payment.reporting_amount_minor)),
        )
        .where(col(Payment.site_id) == site_id, _in_range(start, end))
        .group_by("granule", "refund")
    )
    if visitors is not None:
        query = query.where(visitors)
    rows = (await session.execute(query)).all()
    return [(int(r[0]) * granule_seconds, bool(r[1]), int(r[2])) for r in rows]


@dataclass(frozen=True, slots=True)
class StoredPayment:
    """A payment a write stored (or found stored): what its callers and events need of it.

    Plain data rather than a ``Payment`` model: building a table model runs its validation and
    the ORM's instrumentation, a cost every payment of a batch paid for four attribute reads."""

    id: int
    site_id: str
    transaction_id: str
    payment_type: str
    paid_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> StoredPayment:
        """The stored identity of a ``Payment`` row that has its id."""
        assert payment.id is not None
        return cls(
            payment.id,
            payment.site_id,
            payment.transaction_id,
            payment.payment_type,
            payment.paid_at,
        )


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A payment as the ledger lists it, with its refunds and its visitor's first touch."""

    id: int
    transaction_id: str
    visitor_uid: str
    amount_minor: int
    currency: str
    reporting_amount_minor: int
    reporting_currency: str
    fx_rate: str
    payment_type: str
    product_name: str | None
    paid_at: datetime
    original_transaction_id: str | None
    refunded_minor: int
    billing_interval: str | None
    billing_interval_count: int | None
    provider: str
    source: str | None
    country: str | None
    device_type: str | None


def new_ledger_row(
    payment_id: int, values: Mapping[str, Any], *, visitor_uid: str, first_touch: FirstTouch
) -> LedgerRow:
    """The ledger row of a payment just inserted with ``values`` (its ``payment`` columns), as
    ``ledger_rows`` would read it back: no refund can name a payment that did not exist yet."""
    return LedgerRow(
        id=payment_id,
        transaction_id=values["transaction_id"],
        visitor_uid=visitor_uid,
        amount_minor=values["amount_minor"],
        currency=values["currency"],
        reporting_amount_minor=values["reporting_amount_minor"],
        reporting_currency=values["reporting_currency"],
        fx_rate=values["fx_rate"],
        payment_type=values["payment_type"],
        product_name=values["product_name"],
        paid_at=values["paid_at"],
        original_transaction_id=values["original_transaction_id"],
        refunded_minor=0,
        billing_interval=values["billing_interval"],
        billing_interval_count=values["billing_interval_count"],
        provider=values["provider"],
        source=first_touch.source,
        country=first_touch.country,
        device_type=first_touch.device_type,
    )


def _ledger_conditions(
    site_id: str,
    start: datetime,
    end: datetime,
    payment_type: str | None,
    visitors: ColumnElement[bool] | None,
) -> list[ColumnElement[bool]]:
    conditions = [col(Payment.site_id) == site_id, _in_range(start, end)]
    if payment_type is not None:
        conditions.append(col(Payment.payment_type) == payment_type)
    if visitors is not None:
        conditions.append(visitors)
    return conditions


@cache  # statements are immutable; building this one (an alias, a subquery) is not cheap
def _ledger_select() -> Any:
    refund = aliased(Payment)
    refunded = (
        select(func.coalesce(func.sum(col(refund.amount_minor)), 0))
        .where(
            col(refund.site_id) == col(Payment.site_id),
            col(refund.payment_type) == REFUND,
            col(refund.original_transaction_id) == col(Payment.transaction_id),
        )
        .scalar_subquery()
    )
    return select(
        col(Payment.id),
        col(Payment.transaction_id),
        col(Visitor.uid),
        col(Payment.amount_minor),
        col(Payment.currency),
        col(Payment.reporting_amount_minor),
        col(Payment.reporting_currency),
        col(Payment.fx_rate),
        col(Payment.payment_type),
        col(Payment.product_name),
        col(Payment.paid_at),
        col(Payment.original_transaction_id),
        refunded,
        col(Payment.billing_interval),
        col(Payment.billing_interval_count),
        col(Payment.provider),
        col(Visitor.source),
        col(Visitor.country),
        col(Visitor.device_type),
    ).join(Visitor, col(Visitor.id) == col(Payment.visitor_id))


def _ledger_row(row: Any) -> LedgerRow:
    values = list(row)
    values[12] = int(values[12] or 0)
    return LedgerRow(*values)


async def list_ledger(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    payment_type: str | None,
    visitors: ColumnElement[bool] | None,
    limit: int,
    offset: int = 0,
    before: tuple[datetime, int] | None = None,
) -> list[LedgerRow]:
    """Payments in [start, end], newest first (then newest insert first); ``before`` = keyset."""
    conditions = _ledger_conditions(site_id, start, end, payment_type, visitors)
    if before is not None:
        at, row_id = before
        conditions.append(
            or_(
                col(Payment.paid_at) < at,
                and_(col(Payment.paid_at) == at, col(Payment.id) < row_id),
            )
        )
    query = (
        _ledger_select()
        .where(*conditions)
        .order_by(col(Payment.paid_at).desc(), col(Payment.id).desc())
        .limit(limit)
        .offset(offset)
    )
    return [_ledger_row(row) for row in (await session.execute(query)).all()]


async def count_ledger(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    payment_type: str | None,
    visitors: ColumnElement[bool] | None,
) -> int:
    """How many payments ``list_ledger`` pages through."""
    query = select(func.count()).where(
        *_ledger_conditions(site_id, start, end, payment_type, visitors)
    )
    return int(await session.scalar(query.select_from(Payment)) or 0)


async def ledger_row(session: AsyncSession, *, payment_id: int) -> LedgerRow:
    """One payment as the ledger shows it."""
    row = (await session.execute(_ledger_select().where(col(Payment.id) == payment_id))).one()
    return _ledger_row(row)


async def existing_transactions(
    session: AsyncSession, *, site_id: str, transaction_ids: Sequence[str]
) -> set[str]:
    """Which of a site's ``transaction_ids`` are recorded already (one indexed statement)."""
    if not transaction_ids:
        return set()
    rows = await session.scalars(
        select(col(Payment.transaction_id)).where(
            col(Payment.site_id) == site_id, col(Payment.transaction_id).in_(transaction_ids)
        )
    )
    return set(rows.all())


async def ledger_rows(session: AsyncSession, *, payment_ids: Sequence[int]) -> dict[int, LedgerRow]:
    """Several payments as the ledger shows them, by id (one statement)."""
    rows = await session.execute(_ledger_select().where(col(Payment.id).in_(payment_ids)))
    return {row[0]: _ledger_row(row) for row in rows.all()}


async def insert_payments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many new payments (each row: the ``payment`` columns) in one
    executemany of a Core statement; return their ids in order. A transaction id taken
    meanwhile raises ``IntegrityError``."""
    table = core_table(Payment)
    return await insert_returning_ids(
        session,
        table,
        rows,
        natural_key=table.c.transaction_id,
    )


async def refund_count(session: AsyncSession, *, site_id: str, transaction_id: str) -> int:
    """How many refunds name a payment."""
    count = await session.scalar(
        select(func.count()).where(
            col(Payment.site_id) == site_id,
            col(Payment.payment_type) == REFUND,
            col(Payment.original_transaction_id) == transaction_id,
        )
    )
    return int(count or 0)


async def delete_payment(session: AsyncSession, *, payment_id: int) -> None:
    """Delete one payment row."""
    await session.execute(delete(Payment).where(col(Payment.id) == payment_id))

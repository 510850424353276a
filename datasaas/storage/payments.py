"""Queries on payments: lookups for idempotent writes and the revenue aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import Payment
from datasaas.storage.sql import epoch_seconds

REFUND = "refund"
RECURRING = "recurring"


@dataclass(frozen=True, slots=True)
class RevenueTotals:
    """Sums over a range, in the site's currency's minor units."""

    new_minor: int
    refund_minor: int
    paying_visitors: int


@dataclass(frozen=True, slots=True)
class Subscription:
    """A recurring payment that may cover an instant: when it was paid, net of its refunds."""

    paid_at: datetime
    net_minor: int


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


async def revenue_totals(
    session: AsyncSession, *, site_id: str, start: datetime, end: datetime
) -> RevenueTotals:
    """New revenue, refunds and distinct paying visitors in [start, end]."""
    is_refund = col(Payment.payment_type) == REFUND
    paying = case(
        (and_(~is_refund, col(Payment.amount_minor) > 0), col(Payment.visitor_id)), else_=None
    )
    row = (
        await session.execute(
            select(
                func.coalesce(
                    func.sum(case((~is_refund, col(Payment.reporting_amount_minor)), else_=0)), 0
                ),
                func.coalesce(
                    func.sum(case((is_refund, col(Payment.reporting_amount_minor)), else_=0)), 0
                ),
                func.count(func.distinct(paying)),
            ).where(col(Payment.site_id) == site_id, _in_range(start, end))
        )
    ).one()
    return RevenueTotals(int(row[0]), int(row[1]), int(row[2]))


async def recurring_covering(
    session: AsyncSession, *, site_id: str, at: datetime
) -> tuple[int, list[Subscription]]:
    """Recurring payments that may cover ``at``, net of refunds naming them (paid up to ``at``).

    A calendar month lasts 28 to 31 days, so a payment of the last 28 days surely covers ``at``:
    those are summed in SQL. Payments 28 to 31 days old need the calendar; they come back as
    rows. Older ones cannot cover ``at``.
    """
    refunds = (
        select(
            col(Payment.original_transaction_id).label("original"),
            func.sum(col(Payment.reporting_amount_minor)).label("refunded"),
        )
        .where(
            col(Payment.site_id) == site_id,
            col(Payment.payment_type) == REFUND,
            col(Payment.original_transaction_id).is_not(None),
            col(Payment.paid_at) <= at,
        )
        .group_by(col(Payment.original_transaction_id))
        .subquery()
    )
    net = col(Payment.reporting_amount_minor) - func.coalesce(refunds.c.refunded, 0)
    surely = at - timedelta(days=28)
    recent = (
        select(col(Payment.paid_at), net.label("net"))
        .outerjoin(refunds, refunds.c.original == col(Payment.transaction_id))
        .where(
            col(Payment.site_id) == site_id,
            col(Payment.payment_type) == RECURRING,
            col(Payment.paid_at) <= at,
            col(Payment.paid_at) > at - timedelta(days=31),
        )
        .subquery()
    )
    positive = case((recent.c.net > 0, recent.c.net), else_=0)
    total = await session.scalar(
        select(func.coalesce(func.sum(positive), 0)).where(recent.c.paid_at > surely)
    )
    band = await session.execute(
        select(recent.c.paid_at, recent.c.net).where(recent.c.paid_at <= surely)
    )
    return int(total or 0), [Subscription(row[0], int(row[1])) for row in band.all()]


async def revenue_by_granule(
    session: AsyncSession, *, site_id: str, start: datetime, end: datetime, granule_seconds: int
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
    rows = (await session.execute(query)).all()
    return [(int(r[0]) * granule_seconds, bool(r[1]), int(r[2])) for r in rows]

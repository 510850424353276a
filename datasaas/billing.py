"""Billing intervals: what a recurring payment covers and its amount normalised to one month.

Pure functions (no I/O). A recurring payment covers ``[paid_at, paid_at + count * interval)`` on
the UTC calendar, months and years clamping to the month's end (Jan 31 + 1 month = Feb 28).
MRR is the exact sum of the covering payments' net amounts normalised to a month, rounded once.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from datasaas.errors import InvalidInput

MAX_INTERVAL_COUNT = 365


class PaymentType(StrEnum):
    """The kinds of payment."""

    ONE_TIME = "one_time"
    RECURRING = "recurring"
    REFUND = "refund"


class BillingInterval(StrEnum):
    """The unit of a recurring payment's billing period."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def parse_interval(value: object, *, field: str = "billing_interval") -> BillingInterval:
    """Return the billing interval named by ``value`` (default month), or raise InvalidInput."""
    if value is None:
        return BillingInterval.MONTH
    if isinstance(value, BillingInterval):
        return value
    if isinstance(value, str):
        try:
            return BillingInterval(value.strip().lower())
        except ValueError:
            pass
    raise InvalidInput.for_field(field, "must be one of day, week, month, year")


def parse_count(value: object, *, field: str = "billing_interval_count") -> int:
    """Return a billing interval count in 1..365 (default 1), or raise InvalidInput."""
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_INTERVAL_COUNT:
        return value
    raise InvalidInput.for_field(field, f"must be an integer from 1 to {MAX_INTERVAL_COUNT}")


def add_months(at: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months later, clamped to the month's end."""
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return at.replace(year=year, month=month, day=min(at.day, monthrange(year, month)[1]))


def cover_end(paid_at: datetime, interval: BillingInterval, count: int) -> datetime:
    """The exclusive end of a recurring payment's cover, on the UTC calendar."""
    paid = paid_at.astimezone(UTC)
    if interval is BillingInterval.DAY:
        return paid + timedelta(days=count)
    if interval is BillingInterval.WEEK:
        return paid + timedelta(weeks=count)
    months = count if interval is BillingInterval.MONTH else 12 * count
    return add_months(paid, months)


def monthly_factor(interval: BillingInterval, count: int) -> Fraction:
    """What one unit paid for ``count * interval`` is worth per month."""
    if interval is BillingInterval.MONTH:
        return Fraction(1, count)
    if interval is BillingInterval.YEAR:
        return Fraction(1, 12 * count)
    if interval is BillingInterval.WEEK:
        return Fraction(52, 12 * count)
    return Fraction(365, 12 * count)


def round_half_even(value: Fraction) -> int:
    """Round an exact fraction to the nearest integer, ties to even."""
    return round(value)


def normalised_mrr(groups: Iterable[tuple[BillingInterval, int, int]]) -> int:
    """MRR in minor units from (interval, count, summed net minor units) groups, rounded once."""
    total = sum(
        (Fraction(net) * monthly_factor(interval, count) for interval, count, net in groups),
        Fraction(0),
    )
    return round_half_even(total)

"""Billing intervals: covers on the UTC calendar and exact monthly normalisation (CONTRACT §12)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from datasaas.billing import (
    BillingInterval,
    add_months,
    cover_end,
    monthly_factor,
    normalised_mrr,
    parse_count,
    parse_interval,
)
from datasaas.errors import InvalidInput


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("paid", "interval", "count", "end"),
    [
        ("2026-01-31T10:00:00", BillingInterval.MONTH, 1, "2026-02-28T10:00:00"),
        ("2026-01-31T10:00:00", BillingInterval.MONTH, 3, "2026-04-30T10:00:00"),
        ("2024-02-29T00:00:00", BillingInterval.YEAR, 1, "2025-02-28T00:00:00"),
        ("2024-02-29T00:00:00", BillingInterval.YEAR, 4, "2028-02-29T00:00:00"),
        ("2026-12-15T00:00:00", BillingInterval.MONTH, 14, "2028-02-15T00:00:00"),
        ("2026-03-01T00:00:00", BillingInterval.WEEK, 2, "2026-03-15T00:00:00"),
        ("2026-03-01T00:00:00", BillingInterval.DAY, 365, "2027-03-01T00:00:00"),
    ],
)
def test_cover_end_on_the_utc_calendar(
    paid: str, interval: BillingInterval, count: int, end: str
) -> None:
    assert cover_end(at(paid), interval, count) == at(end)


def test_add_months_crosses_years_backwards_and_forwards() -> None:
    assert add_months(at("2026-11-30T00:00:00"), 3) == at("2027-02-28T00:00:00")
    assert add_months(at("2026-03-31T00:00:00"), -1) == at("2026-02-28T00:00:00")


def test_monthly_factors_follow_the_contract() -> None:
    assert monthly_factor(BillingInterval.MONTH, 3) == Fraction(1, 3)
    assert monthly_factor(BillingInterval.YEAR, 1) == Fraction(1, 12)
    assert monthly_factor(BillingInterval.WEEK, 1) == Fraction(52, 12)
    assert monthly_factor(BillingInterval.DAY, 2) == Fraction(365, 24)


def test_mrr_is_summed_exactly_and_rounded_once_half_even() -> None:
    # Three payments of 1 minor unit every 2 months: each is 0.5, rounded alone they would be
    # 0 or 2 (half-even each); summed exactly they are 1.5 → 2.
    assert normalised_mrr([(BillingInterval.MONTH, 2, 3)]) == 2
    # 0.5 → 0 (half-even), 2.5 → 2.
    assert normalised_mrr([(BillingInterval.MONTH, 2, 1)]) == 0
    assert normalised_mrr([(BillingInterval.MONTH, 2, 5)]) == 2
    # 120000 / 12 + 100 * 52 / 12 = 10000 + 433.33… → 10433.
    assert normalised_mrr([(BillingInterval.YEAR, 1, 120000), (BillingInterval.WEEK, 1, 100)]) == (
        10433
    )


def test_parse_interval_and_count() -> None:
    assert parse_interval(None) is BillingInterval.MONTH
    assert parse_interval("Year") is BillingInterval.YEAR
    assert parse_count(None) == 1
    assert parse_count(365) == 365
    for bad in ("fortnight", 3, ""):
        with pytest.raises(InvalidInput, match="billing_interval"):
            parse_interval(bad)
    for bad_count in (0, 366, True, "2", 1.0):
        with pytest.raises(InvalidInput, match="billing_interval_count"):
            parse_count(bad_count)

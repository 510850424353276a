"""Hypothesis properties of the two pure modules where correctness lives.

``money``: every amount a currency can hold survives major units -> minor units -> major units
exactly, for every ISO 4217 exponent, and floats are refused rather than rounded.
``timerange``: the buckets of any range partition it exactly, with no gap and no overlap, in
zones with DST transitions, and each bucket starts on its local boundary.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datasaas.errors import InvalidInput
from datasaas.money import _EXPONENTS, MAX_AMOUNT, convert, parse_amount, to_major
from datasaas.timerange import MAX_BUCKETS, Granularity, TimeRange, buckets

CURRENCIES = sorted(_EXPONENTS)
EXPONENTS = sorted(set(_EXPONENTS.values()))
# Zones with DST (both hemispheres, half-hour and 45-minute offsets, a 30-minute DST shift) and
# zones whose rules changed over time.
ZONES = [
    "America/New_York",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Africa/Casablanca",
    "UTC",
]
ONE_MICROSECOND = timedelta(microseconds=1)


@st.composite
def currency_and_minor(draw: st.DrawFn) -> tuple[str, int]:
    """A currency and an amount in its minor units, up to the accepted maximum."""
    currency = draw(st.sampled_from(CURRENCIES))
    top = int(MAX_AMOUNT) * 10 ** _EXPONENTS[currency]
    return currency, draw(st.integers(min_value=0, max_value=top))


def test_every_iso_4217_exponent_is_covered() -> None:
    assert EXPONENTS == [0, 2, 3, 4]


@given(currency_and_minor())
@settings(max_examples=500)
def test_money_round_trips_exactly_through_text_and_decimal(amount: tuple[str, int]) -> None:
    currency, minor = amount
    major = to_major(minor, currency)
    assert -major.as_tuple().exponent == _EXPONENTS[currency]  # type: ignore[operator]
    assert parse_amount(str(major), currency) == minor
    assert parse_amount(major, currency) == minor
    assert parse_amount(format(major, "E"), currency) == minor  # exponent notation too


@given(st.sampled_from(EXPONENTS), st.integers(min_value=1, max_value=10**12))
def test_one_digit_too_many_is_refused_not_rounded(exponent: int, coefficient: int) -> None:
    currency = next(c for c in CURRENCIES if _EXPONENTS[c] == exponent)
    too_fine = Decimal(coefficient * 10 + 1).scaleb(-(exponent + 1))
    if too_fine > MAX_AMOUNT:
        return
    with pytest.raises(InvalidInput):
        parse_amount(too_fine, currency)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), st.sampled_from(CURRENCIES))
def test_floats_are_refused_not_converted(value: float, currency: str) -> None:
    with pytest.raises(InvalidInput, match="not a float"):
        parse_amount(value, currency)


@given(st.integers(min_value=0, max_value=10**13))
@settings(deadline=None)  # the first call loads the ECB rates
def test_conversion_is_exact_rational_arithmetic(minor: int) -> None:
    on = datetime(2024, 6, 3, tzinfo=UTC).date()
    result = convert(minor, "USD", "JPY", on=on)
    assert isinstance(result.amount_minor, int)
    # The rate is a Decimal applied as a fraction: the result is the exactly rounded product.
    exact = Fraction(minor) * Fraction(result.rate) * Fraction(1, 100)
    assert abs(Fraction(result.amount_minor) - exact) <= Fraction(1, 2)
    assert round(exact) == result.amount_minor


@st.composite
def ranges(draw: st.DrawFn) -> tuple[TimeRange, Granularity]:
    """A range of up to ~two years around DST changes, in a zone with DST, and a granularity."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    granularity = draw(st.sampled_from(list(Granularity)))
    longest = {
        Granularity.HOUR: timedelta(days=20),
        Granularity.DAY: timedelta(days=400),
        Granularity.WEEK: timedelta(days=700),
        Granularity.MONTH: timedelta(days=800),
    }[granularity]
    start = draw(
        st.datetimes(
            min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
        )
    )
    length = draw(st.timedeltas(min_value=timedelta(0), max_value=longest))
    return TimeRange(start=start, end=start + length, tz=tz), granularity


LORD_HOWE_SPRING = (  # +10:30 to +11:00 at 02:00 local: the 01:00 hour lasts 90 minutes
    TimeRange(
        start=datetime(2001, 10, 27, 14, 0, tzinfo=UTC),
        end=datetime(2001, 10, 27, 18, 0, tzinfo=UTC),
        tz=ZoneInfo("Australia/Lord_Howe"),
    ),
    Granularity.HOUR,
)


@given(ranges())
@example(LORD_HOWE_SPRING)
@settings(max_examples=300, deadline=None)
def test_buckets_partition_the_range_exactly(case: tuple[TimeRange, Granularity]) -> None:
    rng, granularity = case
    series = buckets(rng, granularity)
    assert 1 <= len(series) <= MAX_BUCKETS
    assert series[0].start == rng.start
    assert series[-1].end == rng.end + ONE_MICROSECOND  # the range's end is inclusive
    for before, after in itertools.pairwise(series):
        assert before.end == after.start  # no gap, no overlap
        assert before.start < before.end
    for bucket in series[1:]:
        local = bucket.start.astimezone(rng.tz)
        if granularity is Granularity.HOUR:
            # On the local hour, and an hour long, plus the part of a DST shift inside it that
            # is not a whole hour (tests/test_timerange.py: Lord Howe's 01:00 lasts 90 minutes).
            assert (local.minute, local.second, local.microsecond) == (0, 0, 0)
            before_offset = local.utcoffset()
            after_offset = (bucket.end - ONE_MICROSECOND).astimezone(rng.tz).utcoffset()
            assert before_offset is not None
            assert after_offset is not None
            shift = abs(after_offset - before_offset) % timedelta(hours=1)
            assert bucket.end - bucket.start <= timedelta(hours=1) + shift
        else:
            # Days, weeks and months start at local midnight (or the first instant of a day
            # whose midnight a DST change skipped), on Mondays / the 1st.
            assert bucket.label == local.date().isoformat()
            if granularity is Granularity.WEEK:
                assert local.weekday() == 0
            if granularity is Granularity.MONTH:
                assert local.day == 1

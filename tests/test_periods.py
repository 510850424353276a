"""Period arithmetic (pure): which finished days and hours a range covers, and what stays raw."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from datasaas import periods
from datasaas.periods import DAY, HOUR, MICROSECOND, SLOT_SECONDS


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NOW = at("2026-03-20T12:30:00")


def test_a_finished_range_is_whole_days_then_hours_then_raw_edges() -> None:
    plan = periods.plan_range(at("2026-03-03T05:20:00"), at("2026-03-06T04:59:59.999999"), NOW)
    assert plan.periods[DAY] == [periods.day_of(at("2026-03-04")), periods.day_of(at("2026-03-05"))]
    assert len(plan.periods[HOUR]) == 18 + 5  # 06:00-24:00 on the 3rd, 00:00-05:00 on the 6th
    assert plan.raw == [(at("2026-03-03T05:20:00"), at("2026-03-03T06:00:00"))]


def test_hours_inside_the_grace_period_stay_raw() -> None:
    plan = periods.plan_range(at("2026-03-20T09:10:00"), at("2026-03-20T12:29:59.999999"), NOW)
    assert plan.periods[DAY] == []
    # Only 10:00-11:00 ended more than an hour before NOW.
    assert plan.periods[HOUR] == [periods.seconds_of(at("2026-03-20T10:00:00")) // HOUR]
    assert plan.raw == [
        (at("2026-03-20T09:10:00"), at("2026-03-20T10:00:00")),
        (at("2026-03-20T11:00:00"), at("2026-03-20T12:30:00")),
    ]


def test_slot_plan_names_whole_slots_and_the_cut_edges() -> None:
    first, stop, edges = periods.slot_plan((at("2026-03-01T10:05:00"), at("2026-03-01T11:00:00")))
    width = SLOT_SECONDS * 1_000_000
    assert first * width // 1_000_000 == periods.seconds_of(at("2026-03-01T10:15:00"))
    assert stop - first == 3
    assert edges == [(at("2026-03-01T10:05:00"), at("2026-03-01T10:15:00"))]


def test_runs_collapse_contiguous_periods() -> None:
    assert periods.runs([1, 2, 3, 7, 9, 10]) == [(1, 4), (7, 8), (9, 11)]
    assert periods.runs([]) == []


instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2026, 3, 20), timezones=st.just(UTC)
)


@given(instants, st.integers(min_value=0, max_value=40 * DAY))
def test_a_plan_covers_the_range_exactly_once(start: datetime, length: int) -> None:
    end = start + timedelta(seconds=length)
    plan = periods.plan_range(start, end, NOW)
    pieces = [
        (periods.instant_of(number * span), periods.instant_of((number + 1) * span))
        for span, numbers in plan.periods.items()
        for number in numbers
    ]
    pieces += plan.raw
    pieces.sort()
    assert pieces[0][0] == start
    assert pieces[-1][1] == end + MICROSECOND
    for (_, left_end), (right_start, _) in itertools.pairwise(pieces):
        assert left_end == right_start

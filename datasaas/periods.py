"""Period arithmetic: which finished UTC days and hours a range covers, and what is left raw.

Pure functions over instants (no SQL): ``storage.activity`` caches the periods they name and
reads the raw windows from the event tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = 3_600
DAY = 86_400
SLOT_SECONDS = 900
"""Width of an activity slot: 15 minutes, a divisor of every current UTC offset."""
CACHE_GRACE = timedelta(hours=1)
"""Periods are cached only once they ended this long ago, longer than any write transaction."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Window = tuple[datetime, datetime]
"""A half-open [start, end) window."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A range split into cacheable periods of each span and raw half-open windows."""

    periods: dict[int, list[int]]
    raw: list[Window]


def seconds_of(at: datetime) -> int:
    """Seconds since the epoch, floored."""
    return (at - EPOCH) // timedelta(seconds=1)


def instant_of(seconds: int) -> datetime:
    """The instant ``seconds`` after the epoch."""
    return EPOCH + timedelta(seconds=seconds)


def day_of(at: datetime) -> int:
    """The UTC day number (days since 1970-01-01) of an instant."""
    return (at - EPOCH) // timedelta(days=1)


def whole_periods(window: Window, span: int, limit: int) -> tuple[list[int], list[Window]]:
    """Whole periods of ``span`` seconds inside a window that ended by ``limit``; the rest."""
    start, end = window
    first = -(-(start - EPOCH) // timedelta(seconds=span))
    stop = min(seconds_of(end) // span, limit // span)
    if stop <= first:
        return [], [window]
    rest: list[Window] = []
    if start < instant_of(first * span):
        rest.append((start, instant_of(first * span)))
    if instant_of(stop * span) < end:
        rest.append((instant_of(stop * span), end))
    return list(range(first, stop)), rest


def plan_range(start: datetime, end: datetime, now: datetime) -> Plan:
    """Split [start, end] into finished whole days, then finished whole hours, then raw windows."""
    limit = seconds_of(now - CACHE_GRACE)
    days, rest = whole_periods((start, end + MICROSECOND), DAY, limit)
    hours: list[int] = []
    raw: list[Window] = []
    for window in rest:
        window_hours, window_rest = whole_periods(window, HOUR, limit)
        hours.extend(window_hours)
        raw.extend(window_rest)
    return Plan(periods={DAY: days, HOUR: sorted(hours)}, raw=raw)


def slot_plan(window: Window) -> tuple[int, int, list[Window]]:
    """Whole 15-minute slots [first, stop) inside a half-open window, and the leftover edges."""
    start, end = window
    width = SLOT_SECONDS * 1_000_000
    start_us, end_us = (start - EPOCH) // MICROSECOND, (end - EPOCH) // MICROSECOND
    first, stop = -(-start_us // width), end_us // width
    if stop <= first:
        return first, first, [window]
    edges: list[Window] = []
    if start_us < first * width:
        edges.append((start, EPOCH + timedelta(microseconds=first * width)))
    if stop * width < end_us:
        edges.append((EPOCH + timedelta(microseconds=stop * width), end))
    return first, stop, edges


def runs(periods: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted period numbers as [first, stop)."""
    runs: list[tuple[int, int]] = []
    for period in periods:
        if runs and runs[-1][1] == period:
            runs[-1] = (runs[-1][0], period + 1)
        else:
            runs.append((period, period + 1))
    return runs

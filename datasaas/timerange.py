"""Request time ranges and local-time buckets (CONTRACT §5).

Parses ``start``/``end``/``timezone`` into an inclusive UTC ``TimeRange``, formats instants for
``meta``, and splits a range into hour/day/week/month buckets that follow the wall clock of the
requested IANA zone, DST included.

Resolution rules for local wall times (date-only values and datetimes without an offset):

* An ambiguous time (autumn fold) means its first occurrence, i.e. ``fold=0``.
* A time that does not exist (spring-forward gap) moves forward to the first real instant, the
  transition itself: 02:30 on 2026-03-08 in America/New_York resolves to 03:00 EDT (07:00Z).
* So a day starts at the first instant whose local date is that day, even where local midnight
  does not exist (America/Havana on 2026-03-08 starts at 01:00 CDT); a date-only ``end`` runs up
  to one microsecond before the next day starts.

Supported instants lie in UTC years 2 to 9998, so every bucket edge and local rendering stays
representable by ``datetime``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from datetime import timezone as fixed_offset
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from datasaas.errors import InvalidInput

__all__ = [
    "DEFAULT_SPAN",
    "MAX_BUCKETS",
    "MAX_INSTANT",
    "MIN_INSTANT",
    "Bucket",
    "Granularity",
    "TimeRange",
    "buckets",
    "format_instant",
    "parse_range",
    "parse_timezone",
    "zone_names",
]

MAX_BUCKETS = 10_000
DEFAULT_SPAN = timedelta(days=30)

MIN_INSTANT = datetime(2, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9998, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)

_UTC = ZoneInfo("UTC")
_ONE_US = timedelta(microseconds=1)
_ONE_HOUR = timedelta(hours=1)
_MIDNIGHT = time()
# Zones rendered with a "Z" suffix: UTC and its fixed zero-offset aliases (not Europe/London).
_UTC_KEYS = frozenset(
    {
        "UTC",
        "UCT",
        "Universal",
        "Zulu",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/Universal",
        "Etc/Zulu",
        "GMT",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Greenwich",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "Etc/Greenwich",
    }
)
_ECHO_LIMIT = 64
_ISO_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?"
    # A space before the offset digits is a "+" that URL query decoding turned into a space.
    r"(?P<offset>[Zz]|(?P<sign>[+\- ])(?P<off_h>[0-9]{2})(?::?(?P<off_m>[0-9]{2}))?)?)?"
)


class Granularity(StrEnum):
    """Bucket size of a time series."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @classmethod
    def parse(cls, value: str | None, field: str = "granularity") -> Granularity:
        """Parse a case-insensitive granularity name; ``None`` means ``day``."""
        if value is None:
            return cls.DAY
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise InvalidInput.for_field(
                field, f"unknown granularity {_echo(value)}; expected one of {allowed}"
            ) from None


@dataclass(frozen=True, slots=True)
class TimeRange:
    """An inclusive span of instants, normalised to UTC, read in the time zone ``tz``."""

    start: datetime
    end: datetime
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware start and end")
        if self.start > self.end:
            raise ValueError("TimeRange start must not be after end")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def timezone_name(self) -> str:
        """The IANA name of the range's time zone."""
        return self.tz.key

    def meta_start(self) -> str:
        """``start`` as echoed in ``meta.start``."""
        return format_instant(self.start, self.tz)

    def meta_end(self) -> str:
        """``end`` as echoed in ``meta.end``."""
        return format_instant(self.end, self.tz)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One series bucket: local-start ``label`` and the in-range part ``[start, end)`` in UTC."""

    label: str
    start: datetime
    end: datetime


def parse_timezone(name: str | None) -> ZoneInfo:
    """Resolve an IANA zone name; ``None`` or empty means UTC."""
    if name is None or not name.strip():
        return _UTC
    key = name.strip()
    if key in _known_zone_keys():
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidInput.for_field("timezone", f"unknown IANA time zone {_echo(name)}")


def parse_range(
    start: str | None,
    end: str | None,
    timezone: str | None = None,
    *,
    now: datetime | None = None,
) -> TimeRange:
    """Resolve request ``start``/``end``/``timezone`` into a ``TimeRange`` (CONTRACT §5)."""
    tz = parse_timezone(timezone)
    start_at = None if start is None else _parse_bound(start, "start", tz, is_end=False)
    if end is not None:
        end_at = _parse_bound(end, "end", tz, is_end=True)
    else:
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        end_at = _check_supported(now.astimezone(UTC), "end", "now")
    if start_at is None:
        start_at = _check_supported(end_at - DEFAULT_SPAN, "start", "end minus 30 days")
    if start_at > end_at:
        raise InvalidInput.for_field(
            "start",
            f"start ({format_instant(start_at, tz)}) must not be after end "
            f"({format_instant(end_at, tz)})",
        )
    return TimeRange(start_at, end_at, tz)


def format_instant(instant: datetime, tz: ZoneInfo) -> str:
    """Render an instant in ``tz`` to the second: ``...T23:59:59Z`` in UTC, else ``...-04:00``."""
    if instant.tzinfo is None:
        raise ValueError("format_instant needs a timezone-aware datetime")
    return _render(instant.astimezone(tz), _is_utc(tz))


def buckets(rng: TimeRange, granularity: Granularity) -> list[Bucket]:
    """Split ``rng`` into ascending local-time buckets that tile it exactly, clipped to it."""
    granularity = Granularity(granularity)
    if _estimated_count(rng, granularity) > MAX_BUCKETS:
        raise _too_many(granularity)
    series = (
        _hour_buckets(rng) if granularity is Granularity.HOUR else _date_buckets(rng, granularity)
    )
    result: list[Bucket] = []
    for bucket in series:
        if len(result) == MAX_BUCKETS:
            raise _too_many(granularity)
        result.append(bucket)
    return result


def _echo(value: str) -> str:
    """Quote user input for an error message, truncated so huge inputs are not reflected."""
    if len(value) > _ECHO_LIMIT:
        return repr(value[:_ECHO_LIMIT] + "...")
    return repr(value)


def zone_names() -> list[str]:
    """Every IANA zone name ``timezone`` accepts, sorted (for the OpenAPI enum)."""
    return sorted(_known_zone_keys())


@cache
def _known_zone_keys() -> frozenset[str]:
    """Loadable IANA keys; ``ZoneInfo`` alone would also take ``posix/...`` and host files."""
    return frozenset(available_timezones() - {"localtime", "posixrules"})


def _is_utc(tz: ZoneInfo) -> bool:
    return tz.key in _UTC_KEYS


def _render(local: datetime, utc_style: bool) -> str:
    """ISO text of an aware local datetime to the second (truncated), ``Z`` for UTC zones."""
    # isoformat keeps a pre-1900 local-mean-time offset's seconds (+00:53:28) rather than lie.
    text = local.isoformat(timespec="seconds")
    return text[:-6] + "Z" if utc_style else text


def _parse_bound(value: str, field: str, tz: ZoneInfo, *, is_end: bool) -> datetime:
    match = _ISO_RE.fullmatch(value.strip())
    if match is None:
        raise _malformed(field, value)
    parts = match.groupdict()
    try:
        day = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
        if parts["hour"] is None:
            if is_end:
                instant = _day_start(day + timedelta(days=1), tz) - _ONE_US
            else:
                instant = _day_start(day, tz)
        else:
            fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
            wall = datetime.combine(
                day,
                time(
                    int(parts["hour"]),
                    int(parts["minute"]),
                    int(parts["second"] or 0),
                    int(fraction),
                ),
            )
            offset = _parse_offset(parts)
            if offset is None:
                instant = _local_to_utc(wall, tz)
            else:
                instant = wall.replace(tzinfo=fixed_offset(offset)).astimezone(UTC)
    except OverflowError:
        raise _unsupported(field, value) from None
    except ValueError:
        raise _malformed(field, value) from None
    return _check_supported(instant, field, value)


def _parse_offset(parts: dict[str, str | None]) -> timedelta | None:
    """The explicit UTC offset of a parsed datetime, or ``None`` when it has none."""
    if parts["offset"] is None:
        return None
    if parts["offset"] in ("Z", "z"):
        return timedelta(0)
    hours = int(parts["off_h"] or 0)
    minutes = int(parts["off_m"] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    magnitude = timedelta(hours=hours, minutes=minutes)
    return -magnitude if parts["sign"] == "-" else magnitude


def _check_supported(instant: datetime, field: str, value: str) -> datetime:
    if not MIN_INSTANT <= instant <= MAX_INSTANT:
        raise _unsupported(field, value)
    return instant


def _malformed(field: str, value: str) -> InvalidInput:
    return InvalidInput.for_field(
        field, f"{_echo(value)} is not a date (YYYY-MM-DD) or an ISO 8601 datetime"
    )


def _unsupported(field: str, value: str) -> InvalidInput:
    return InvalidInput.for_field(
        field, f"{_echo(value)} is outside the supported range (years 2 to 9998 UTC)"
    )


def _too_many(granularity: Granularity) -> InvalidInput:
    return InvalidInput.for_field(
        "granularity",
        f"the range spans more than {MAX_BUCKETS:,} {granularity.value} buckets; "
        "use a coarser granularity or a shorter range",
    )


def _offset_at(instant: datetime, tz: ZoneInfo) -> timedelta | None:
    return instant.astimezone(tz).utcoffset()


def _first_change(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The earliest instant in ``(lo, hi]`` whose UTC offset differs from the one at ``lo``."""
    before = _offset_at(lo, tz)
    while hi - lo > _ONE_US:
        mid = lo + (hi - lo) // 2
        if _offset_at(mid, tz) == before:
            lo = mid
        else:
            hi = mid
    return hi


def _local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant whose local wall time in ``tz`` is at or after the naive ``wall``."""
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == wall:
        return earlier
    # In a gap, fold=1 applies the post-transition offset and lands before the transition.
    before_gap = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_change(before_gap, earlier, tz)


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return _local_to_utc(datetime.combine(day, _MIDNIGHT), tz)


def _bucket_floor(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    return day


def _bucket_after(first: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return first + timedelta(days=7)
    if granularity is Granularity.MONTH:
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first + timedelta(days=1)


def _estimated_count(rng: TimeRange, granularity: Granularity) -> int:
    """A cheap lower bound on the bucket count, to reject huge ranges before building any."""
    if granularity is Granularity.HOUR:
        # Hour buckets last under two hours even across odd transitions (e.g. 30-minute shifts).
        return (rng.end - rng.start) // (2 * _ONE_HOUR)
    first = _bucket_floor(rng.start.astimezone(rng.tz).date(), granularity)
    last = rng.end.astimezone(rng.tz).date()
    if granularity is Granularity.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month
    step = 7 if granularity is Granularity.WEEK else 1
    return (last - first).days // step


def _date_buckets(rng: TimeRange, granularity: Granularity) -> Iterator[Bucket]:
    tz = rng.tz
    stop = rng.end + _ONE_US
    first = _bucket_floor(rng.start.astimezone(tz).date(), granularity)
    first_start, offset, at_midnight = _day_start_with_offset(first, tz)
    while first_start < stop:
        following = _bucket_after(first, granularity)
        following_start = first_start + (following - first)
        following_local = following_start.astimezone(tz)
        # Fast path: from a real midnight, the same offset (first occurrence) is midnight again.
        if not at_midnight or following_local.fold or following_local.utcoffset() != offset:
            following_start, offset, at_midnight = _day_start_with_offset(following, tz)
        clipped_start = max(first_start, rng.start)
        clipped_end = min(following_start, stop)
        # A calendar day skipped entirely (Pacific/Apia, 2011-12-30) owns no instant at all.
        if clipped_start < clipped_end:
            yield Bucket(first.isoformat(), clipped_start, clipped_end)
        first, first_start = following, following_start


def _day_start_with_offset(day: date, tz: ZoneInfo) -> tuple[datetime, timedelta | None, bool]:
    """``_day_start`` plus the offset there and whether the wall clock reads exactly midnight."""
    start = _day_start(day, tz)
    local = start.astimezone(tz)
    return start, local.utcoffset(), local.date() == day and local.time() == _MIDNIGHT


def _is_on_the_hour(local: datetime) -> bool:
    return local.minute == 0 and local.second == 0 and local.microsecond == 0


def _hour_floor(instant: datetime, tz: ZoneInfo) -> datetime:
    """The latest instant at or before ``instant`` whose local time is on the hour."""
    while True:
        local = instant.astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None
        wall = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        candidate = (wall - offset).replace(tzinfo=UTC)
        if _offset_at(candidate, tz) == offset:
            return candidate
        transition = _first_change(candidate, instant, tz)
        if _is_on_the_hour(transition.astimezone(tz)):
            return transition
        instant = transition - _ONE_US


def _hour_after(boundary: datetime, local: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The next on-the-hour instant after ``boundary`` (whose local time is ``local``)."""
    while True:
        offset = local.utcoffset()
        assert offset is not None
        wall = local.replace(minute=0, second=0, microsecond=0, tzinfo=None) + _ONE_HOUR
        candidate = (wall - offset).replace(tzinfo=UTC)
        candidate_local = candidate.astimezone(tz)
        if candidate_local.utcoffset() == offset:
            return candidate, candidate_local
        transition = _first_change(boundary, candidate, tz)
        transition_local = transition.astimezone(tz)
        if _is_on_the_hour(transition_local):
            return transition, transition_local
        boundary, local = transition, transition_local


def _hour_buckets(rng: TimeRange) -> Iterator[Bucket]:
    tz = rng.tz
    utc_style = _is_utc(tz)
    stop = rng.end + _ONE_US
    boundary = _hour_floor(rng.start, tz)
    local = boundary.astimezone(tz)
    offset = local.utcoffset()
    while boundary < stop:
        # Fast path: boundaries are on the hour, so without a transition the next is 1h later.
        following = boundary + _ONE_HOUR
        following_local = following.astimezone(tz)
        following_offset = following_local.utcoffset()
        if following_offset != offset:
            following, following_local = _hour_after(boundary, local, tz)
            following_offset = following_local.utcoffset()
        label = local.isoformat()
        yield Bucket(
            label[:-6] + "Z" if utc_style else label,
            max(boundary, rng.start),
            min(following, stop),
        )
        boundary, local, offset = following, following_local, following_offset


@dataclass(frozen=True, slots=True)
class Period:
    """The raw ``start``/``end``/``timezone`` arguments of a read."""

    start: str | None = None
    end: str | None = None
    timezone: str | None = None

    def resolve(self, now: datetime | None = None) -> TimeRange:
        """Parse into a TimeRange (InvalidInput on bad values)."""
        return parse_range(self.start, self.end, self.timezone, now=now)

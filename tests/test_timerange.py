"""Time ranges and local-time buckets (CONTRACT §5); expected instants are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from datasaas.errors import InvalidInput
from datasaas.timerange import (
    MAX_BUCKETS,
    Bucket,
    Granularity,
    TimeRange,
    buckets,
    format_instant,
    parse_range,
    parse_timezone,
)

US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
NY = "America/New_York"
BERLIN = "Europe/Berlin"
KOLKATA = "Asia/Kolkata"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def field_of(error: pytest.ExceptionInfo[InvalidInput]) -> str:
    """The single field an InvalidInput names."""
    assert len(error.value.details) == 1
    return error.value.details[0].field


def series(
    start: str | None, end: str | None, tz: str, granularity: Granularity
) -> tuple[TimeRange, list[Bucket]]:
    """Parse a range, bucket it, and check the buckets tile it exactly."""
    rng = parse_range(start, end, tz)
    result = buckets(rng, granularity)
    assert_tiles(rng, result)
    return rng, result


def assert_tiles(rng: TimeRange, result: list[Bucket]) -> None:
    """Buckets cover ``[rng.start, rng.end]`` ascending with no gap or overlap."""
    assert result
    assert result[0].start == rng.start
    assert result[-1].end == rng.end + US
    for bucket in result:
        assert bucket.start < bucket.end
        assert bucket.start.tzinfo is UTC
        assert bucket.end.tzinfo is UTC
    for current, following in pairwise(result):
        assert current.end == following.start


def labels(result: list[Bucket]) -> list[str]:
    return [bucket.label for bucket in result]


def durations(result: list[Bucket]) -> list[timedelta]:
    return [bucket.end - bucket.start for bucket in result]


# --- Granularity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Granularity.DAY),
        ("hour", Granularity.HOUR),
        ("DAY", Granularity.DAY),
        (" Week ", Granularity.WEEK),
        ("Month", Granularity.MONTH),
    ],
)
def test_granularity_parse(value: str | None, expected: Granularity) -> None:
    assert Granularity.parse(value) is expected


def test_granularity_values_are_strings() -> None:
    assert [g.value for g in Granularity] == ["hour", "day", "week", "month"]
    assert isinstance(Granularity.HOUR, str)
    assert f"{Granularity.WEEK}" == "week"


@pytest.mark.parametrize("value", ["yearly", "", "minute", "days"])
def test_granularity_parse_rejects_unknown(value: str) -> None:
    with pytest.raises(InvalidInput) as error:
        Granularity.parse(value)
    assert field_of(error) == "granularity"
    assert "hour, day, week, month" in error.value.details[0].message


def test_granularity_parse_reports_the_given_field() -> None:
    with pytest.raises(InvalidInput) as error:
        Granularity.parse("fortnight", field="interval")
    assert field_of(error) == "interval"


# --- parse_timezone ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "  "])
def test_parse_timezone_defaults_to_utc(name: str | None) -> None:
    assert parse_timezone(name).key == "UTC"


@pytest.mark.parametrize("name", [NY, KOLKATA, "Etc/UTC", "UTC", "  Europe/Berlin  "])
def test_parse_timezone_accepts_iana_names(name: str) -> None:
    assert parse_timezone(name).key == name.strip()


def test_parse_timezone_rejects_unknown_zone_with_message() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_timezone("Mars/Base")
    assert field_of(error) == "timezone"
    assert error.value.details[0].message == "unknown IANA time zone 'Mars/Base'"
    assert error.value.status == 400


@pytest.mark.parametrize(
    "name",
    [
        "utc",
        "america/new_york",
        "America",
        "../etc/passwd",
        "/etc/localtime",
        "localtime",
        "posix/America/New_York",
        "zone.tab",
        "+05:30",
        "America/New_York\x00",
    ],
)
def test_parse_timezone_rejects_non_iana_names(name: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_timezone(name)
    assert field_of(error) == "timezone"


# --- parse_range: defaults --------------------------------------------------------------------

NOW = utc(2026, 3, 26, 12, 34, 56, 789_000)


def test_defaults_end_now_start_thirty_days_before() -> None:
    rng = parse_range(None, None, now=NOW)
    assert rng.end == NOW
    assert rng.start == utc(2026, 2, 24, 12, 34, 56, 789_000)
    assert rng.timezone_name == "UTC"
    assert rng.meta_start() == "2026-02-24T12:34:56Z"
    assert rng.meta_end() == "2026-03-26T12:34:56Z"


def test_defaults_rendered_in_new_york_across_dst() -> None:
    rng = parse_range(None, None, NY, now=NOW)
    assert rng.timezone_name == NY
    # 30 days of elapsed time, so the EST start shows one hour earlier on the wall clock.
    assert rng.meta_start() == "2026-02-24T07:34:56-05:00"
    assert rng.meta_end() == "2026-03-26T08:34:56-04:00"


def test_default_end_with_given_start() -> None:
    rng = parse_range("2026-03-20", None, now=NOW)
    assert rng.start == utc(2026, 3, 20)
    assert rng.end == NOW


def test_default_start_is_thirty_days_before_given_end() -> None:
    rng = parse_range(None, "2026-03-31", now=NOW)
    assert rng.end == utc(2026, 3, 31, 23, 59, 59, 999_999)
    assert rng.start == utc(2026, 3, 1, 23, 59, 59, 999_999)


def test_default_now_is_the_current_time() -> None:
    before = datetime.now(UTC)
    rng = parse_range(None, None)
    after = datetime.now(UTC)
    assert before <= rng.end <= after
    assert rng.end - rng.start == timedelta(days=30)


def test_now_in_another_zone_is_normalised_to_utc() -> None:
    rng = parse_range(None, None, now=datetime(2026, 3, 26, 8, 0, tzinfo=ZoneInfo(NY)))
    assert rng.end == utc(2026, 3, 26, 12, 0)
    assert rng.end.tzinfo is UTC


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_range(None, None, now=datetime(2026, 3, 26))


# --- parse_range: date-only bounds ------------------------------------------------------------


def test_date_only_bounds_in_utc() -> None:
    rng = parse_range("2026-03-01", "2026-03-26")
    assert rng.start == utc(2026, 3, 1)
    assert rng.end == utc(2026, 3, 26, 23, 59, 59, 999_999)
    assert rng.meta_start() == "2026-03-01T00:00:00Z"
    assert rng.meta_end() == "2026-03-26T23:59:59Z"


def test_date_only_bounds_in_new_york() -> None:
    rng = parse_range("2026-03-01", "2026-03-26", NY)
    assert rng.start == utc(2026, 3, 1, 5)  # EST, -05:00
    assert rng.end == utc(2026, 3, 27, 3, 59, 59, 999_999)  # EDT, -04:00
    assert rng.meta_start() == "2026-03-01T00:00:00-05:00"
    assert rng.meta_end() == "2026-03-26T23:59:59-04:00"


def test_date_only_bounds_in_kolkata() -> None:
    rng = parse_range("2026-03-26", "2026-03-26", KOLKATA)
    assert rng.start == utc(2026, 3, 25, 18, 30)
    assert rng.end == utc(2026, 3, 26, 18, 29, 59, 999_999)
    assert rng.meta_start() == "2026-03-26T00:00:00+05:30"
    assert rng.meta_end() == "2026-03-26T23:59:59+05:30"


def test_same_day_start_and_end_is_valid() -> None:
    rng = parse_range("2026-03-26", "2026-03-26")
    assert rng.end - rng.start == timedelta(days=1) - US


def test_parse_range_returns_utc_datetimes_and_zone() -> None:
    rng = parse_range("2026-03-01", "2026-03-02", BERLIN)
    assert rng.start.tzinfo is UTC
    assert rng.end.tzinfo is UTC
    assert rng.tz == ZoneInfo(BERLIN)


# --- parse_range: datetimes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-26T10:00:00Z", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00:00z", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00Z", utc(2026, 3, 26, 10)),
        ("2026-03-26 10:00:00Z", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00:00+00:00", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00:00-00:00", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00:00+05:30", utc(2026, 3, 26, 4, 30)),
        ("2026-03-26T10:00:00+0530", utc(2026, 3, 26, 4, 30)),
        ("2026-03-26T10:00:00+05", utc(2026, 3, 26, 5)),
        ("2026-03-26T10:00:00-04:00", utc(2026, 3, 26, 14)),
        ("2026-03-26T23:30:00-04:00", utc(2026, 3, 27, 3, 30)),
        ("2026-03-26T10:00:00.5Z", utc(2026, 3, 26, 10, 0, 0, 500_000)),
        ("2026-03-26T10:00:00,25Z", utc(2026, 3, 26, 10, 0, 0, 250_000)),
        ("2026-03-26T10:00:00.123456Z", utc(2026, 3, 26, 10, 0, 0, 123_456)),
        # Beyond microseconds the digits are truncated, never rounded up.
        ("2026-03-26T10:00:00.123456999Z", utc(2026, 3, 26, 10, 0, 0, 123_456)),
        # "+" decoded to a space by a query string.
        ("2026-03-26T10:00:00 05:30", utc(2026, 3, 26, 4, 30)),
        ("  2026-03-26T10:00:00Z  ", utc(2026, 3, 26, 10)),
    ],
)
def test_explicit_offsets_ignore_the_range_zone(value: str, expected: datetime) -> None:
    rng = parse_range(value, value, NY)
    assert rng.start == expected
    assert rng.end == expected


def test_explicit_offset_is_echoed_in_the_range_zone() -> None:
    rng = parse_range("2026-03-26T10:00:00+05:30", "2026-03-26T10:00:00Z", NY)
    assert rng.meta_start() == "2026-03-26T00:30:00-04:00"
    assert rng.meta_end() == "2026-03-26T06:00:00-04:00"


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2026-03-26T10:00:00", "UTC", utc(2026, 3, 26, 10)),
        ("2026-03-26T10:00:00", NY, utc(2026, 3, 26, 14)),
        ("2026-01-15T10:00", NY, utc(2026, 1, 15, 15)),
        ("2026-07-01T12:00:00", BERLIN, utc(2026, 7, 1, 10)),
        ("2026-03-26T10:00:00", KOLKATA, utc(2026, 3, 26, 4, 30)),
        ("2026-03-26T10:00:00.250", KOLKATA, utc(2026, 3, 26, 4, 30, 0, 250_000)),
    ],
)
def test_datetime_without_offset_is_local(value: str, tz: str, expected: datetime) -> None:
    assert parse_range(value, value, tz).start == expected


@pytest.mark.parametrize(
    ("value", "tz", "expected", "meta"),
    [
        # Spring-forward gaps move forward to the transition instant.
        ("2026-03-08T02:30", NY, utc(2026, 3, 8, 7), "2026-03-08T03:00:00-04:00"),
        ("2026-03-08T02:00", NY, utc(2026, 3, 8, 7), "2026-03-08T03:00:00-04:00"),
        ("2026-03-08T02:59:59.999999", NY, utc(2026, 3, 8, 7), "2026-03-08T03:00:00-04:00"),
        ("2026-03-29T02:15", BERLIN, utc(2026, 3, 29, 1), "2026-03-29T03:00:00+02:00"),
        # Autumn folds take the first occurrence (the summer offset).
        ("2026-11-01T01:30", NY, utc(2026, 11, 1, 5, 30), "2026-11-01T01:30:00-04:00"),
        ("2026-10-25T02:30", BERLIN, utc(2026, 10, 25, 0, 30), "2026-10-25T02:30:00+02:00"),
    ],
)
def test_nonexistent_and_ambiguous_local_times(
    value: str, tz: str, expected: datetime, meta: str
) -> None:
    rng = parse_range(value, value, tz)
    assert rng.start == expected
    assert rng.meta_start() == meta


def test_second_occurrence_of_a_fold_needs_an_offset() -> None:
    rng = parse_range("2026-11-01T01:30", "2026-11-01T01:30:00-05:00", NY)
    assert rng.end - rng.start == HOUR
    assert rng.meta_end() == "2026-11-01T01:30:00-05:00"


# --- parse_range: invalid input ---------------------------------------------------------------

BAD_BOUNDS = [
    "",
    "   ",
    "yesterday",
    "now",
    "2026-13-01",
    "2026-00-10",
    "2026-02-29",
    "2026-04-31",
    "2026-3-1",
    "26-03-01",
    "20260301",
    "2026-W13-4",
    "2026-03-01Z",
    "2026-03-01T10",
    "2026-03-01T25:00",
    "2026-03-01T24:00:00",
    "2026-03-01T10:60",
    "2026-03-01T10:00:60",
    "2026-03-01T10:00:00.Z",
    "2026-03-01T10:00:00+24:00",
    "2026-03-01T10:00:00+05:60",
    "2026-03-01T10:00:00 UTC",
    "2026-03-01T10:00:00Z junk",
    "\u0662\u0660\u0662\u0666-\u0660\u0663-\u0660\u0661",
    "1711449600",
]


@pytest.mark.parametrize("value", BAD_BOUNDS)
def test_bad_start_is_rejected(value: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range(value, "2026-03-26")
    assert field_of(error) == "start"
    assert error.value.status == 400


@pytest.mark.parametrize("value", BAD_BOUNDS)
def test_bad_end_is_rejected(value: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("2026-03-01", value)
    assert field_of(error) == "end"


def test_bad_bound_message_names_the_formats() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("yesterday", None, now=NOW)
    assert error.value.details[0].message == (
        "'yesterday' is not a date (YYYY-MM-DD) or an ISO 8601 datetime"
    )
    assert error.value.message.startswith("start: ")


def test_huge_bad_input_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("x" * 10_000, None, now=NOW)
    assert len(error.value.message) < 200


def test_bad_timezone_in_range() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("2026-03-01", "2026-03-26", "Mars/Base")
    assert field_of(error) == "timezone"


def test_bad_timezone_is_reported_before_bad_dates() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("nope", "nope", "Mars/Base")
    assert field_of(error) == "timezone"


@pytest.mark.parametrize(
    ("start", "end", "tz"),
    [
        ("2026-03-27", "2026-03-26", "UTC"),
        ("2026-03-26T10:00:00.000001Z", "2026-03-26T10:00:00Z", "UTC"),
        # 10:00 in New York is 14:00Z, after 12:00Z.
        ("2026-03-26T10:00", "2026-03-26T12:00:00Z", NY),
    ],
)
def test_start_after_end_is_rejected(start: str, end: str, tz: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range(start, end, tz)
    assert field_of(error) == "start"
    assert "must not be after end" in error.value.details[0].message


def test_start_after_default_end_is_rejected() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range("2026-04-01", None, now=NOW)
    assert field_of(error) == "start"


def test_start_equal_to_end_is_accepted() -> None:
    rng = parse_range("2026-03-26T10:00:00Z", "2026-03-26T10:00:00Z")
    assert rng.start == rng.end


@pytest.mark.parametrize(
    ("start", "end", "tz", "field"),
    [
        ("0001-01-01", "2026-01-01", "Asia/Tokyo", "start"),
        ("0001-06-01", "2026-01-01", "UTC", "start"),
        ("2026-01-01", "9999-12-31", "UTC", "end"),
        ("2026-01-01", "9999-12-31T23:59:59.999999Z", "UTC", "end"),
    ],
)
def test_instants_outside_the_supported_years_are_rejected(
    start: str, end: str, tz: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_range(start, end, tz)
    assert field_of(error) == field
    assert "supported range" in error.value.details[0].message


# --- format_instant and TimeRange -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("UTC", "2026-03-26T23:59:59Z"),
        ("Etc/UTC", "2026-03-26T23:59:59Z"),
        ("GMT", "2026-03-26T23:59:59Z"),
        (NY, "2026-03-26T19:59:59-04:00"),
        (KOLKATA, "2026-03-27T05:29:59+05:30"),
        ("Asia/Kathmandu", "2026-03-27T05:44:59+05:45"),
        ("America/St_Johns", "2026-03-26T21:29:59-02:30"),
        # Zero offset but not a UTC zone: the offset stays explicit.
        ("Europe/London", "2026-03-26T23:59:59+00:00"),
    ],
)
def test_format_instant_truncates_to_seconds_in_zone(tz: str, expected: str) -> None:
    assert format_instant(utc(2026, 3, 26, 23, 59, 59, 999_999), ZoneInfo(tz)) == expected


def test_format_instant_accepts_any_aware_datetime() -> None:
    instant = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo(BERLIN))
    assert format_instant(instant, ZoneInfo("UTC")) == "2026-07-01T10:00:00Z"


def test_format_instant_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_instant(datetime(2026, 3, 26), ZoneInfo("UTC"))


def test_time_range_normalises_to_utc() -> None:
    tz = ZoneInfo(NY)
    rng = TimeRange(datetime(2026, 3, 26, 8, tzinfo=tz), utc(2026, 3, 26, 13), tz)
    assert rng.start == utc(2026, 3, 26, 12)
    assert rng.start.tzinfo is UTC
    assert rng.meta_start() == "2026-03-26T08:00:00-04:00"
    assert rng.meta_end() == "2026-03-26T09:00:00-04:00"


def test_time_range_rejects_naive_or_reversed_bounds() -> None:
    tz = ZoneInfo("UTC")
    with pytest.raises(ValueError, match="aware"):
        TimeRange(datetime(2026, 3, 26), utc(2026, 3, 27), tz)
    with pytest.raises(ValueError, match="after"):
        TimeRange(utc(2026, 3, 27), utc(2026, 3, 26), tz)


# --- day buckets ------------------------------------------------------------------------------


def test_day_buckets_in_utc() -> None:
    _, result = series("2026-03-01", "2026-03-03", "UTC", Granularity.DAY)
    assert result == [
        Bucket("2026-03-01", utc(2026, 3, 1), utc(2026, 3, 2)),
        Bucket("2026-03-02", utc(2026, 3, 2), utc(2026, 3, 3)),
        Bucket("2026-03-03", utc(2026, 3, 3), utc(2026, 3, 4)),
    ]


def test_day_buckets_clip_partial_first_and_last_days() -> None:
    _, result = series("2026-03-01T18:00:00Z", "2026-03-03T06:00:00Z", "UTC", Granularity.DAY)
    assert result == [
        Bucket("2026-03-01", utc(2026, 3, 1, 18), utc(2026, 3, 2)),
        Bucket("2026-03-02", utc(2026, 3, 2), utc(2026, 3, 3)),
        Bucket("2026-03-03", utc(2026, 3, 3), utc(2026, 3, 3, 6, 0, 0, 1)),
    ]


def test_day_buckets_new_york_spring_forward_day_is_23_hours() -> None:
    _, result = series("2026-03-07", "2026-03-09", NY, Granularity.DAY)
    assert labels(result) == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert [b.start for b in result] == [utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)]
    assert durations(result) == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]


def test_day_buckets_new_york_fall_back_day_is_25_hours() -> None:
    _, result = series("2026-10-31", "2026-11-02", NY, Granularity.DAY)
    assert labels(result) == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert [b.start for b in result] == [
        utc(2026, 10, 31, 4),
        utc(2026, 11, 1, 4),
        utc(2026, 11, 2, 5),
    ]
    assert durations(result) == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]


def test_day_buckets_berlin_spring_forward_day_is_23_hours() -> None:
    _, result = series("2026-03-28", "2026-03-30", BERLIN, Granularity.DAY)
    assert labels(result) == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert [b.start for b in result] == [
        utc(2026, 3, 27, 23),
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 22),
    ]
    assert durations(result) == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]


def test_day_buckets_berlin_fall_back_day_is_25_hours() -> None:
    _, result = series("2026-10-24", "2026-10-26", BERLIN, Granularity.DAY)
    assert labels(result) == ["2026-10-24", "2026-10-25", "2026-10-26"]
    assert [b.start for b in result] == [
        utc(2026, 10, 23, 22),
        utc(2026, 10, 24, 22),
        utc(2026, 10, 25, 23),
    ]
    assert durations(result) == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]


def test_day_buckets_in_kolkata_start_at_utc_half_hour() -> None:
    _, result = series("2026-03-26", "2026-03-27", KOLKATA, Granularity.DAY)
    assert result == [
        Bucket("2026-03-26", utc(2026, 3, 25, 18, 30), utc(2026, 3, 26, 18, 30)),
        Bucket("2026-03-27", utc(2026, 3, 26, 18, 30), utc(2026, 3, 27, 18, 30)),
    ]


def test_day_bucket_labels_follow_the_local_date() -> None:
    # 2026-03-26T02:00Z is still the 25th in New York.
    _, result = series("2026-03-26T02:00:00Z", "2026-03-26T05:00:00Z", NY, Granularity.DAY)
    assert result == [
        Bucket("2026-03-25", utc(2026, 3, 26, 2), utc(2026, 3, 26, 4)),
        Bucket("2026-03-26", utc(2026, 3, 26, 4), utc(2026, 3, 26, 5, 0, 0, 1)),
    ]


def test_single_instant_range_has_one_microsecond_bucket() -> None:
    _, result = series("2026-03-26T10:00:00Z", "2026-03-26T10:00:00Z", "UTC", Granularity.DAY)
    assert result == [Bucket("2026-03-26", utc(2026, 3, 26, 10), utc(2026, 3, 26, 10, 0, 0, 1))]


# --- zones whose local midnight does not exist or repeats ------------------------------------


def test_havana_spring_forward_skips_midnight() -> None:
    # 2026-03-08 00:00 CST (-05:00) jumps to 01:00 CDT (-04:00) at 05:00Z.
    rng = parse_range("2026-03-08", "2026-03-08", "America/Havana")
    assert rng.start == utc(2026, 3, 8, 5)
    assert rng.meta_start() == "2026-03-08T01:00:00-04:00"
    assert rng.meta_end() == "2026-03-08T23:59:59-04:00"

    _, days = series("2026-03-07", "2026-03-09", "America/Havana", Granularity.DAY)
    assert labels(days) == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert [b.start for b in days] == [utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)]
    assert durations(days) == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]

    _, hours = series("2026-03-07T23:00", "2026-03-08T01:59:59", "America/Havana", Granularity.HOUR)
    assert labels(hours) == ["2026-03-07T23:00:00-05:00", "2026-03-08T01:00:00-04:00"]


def test_havana_fall_back_repeats_midnight_and_the_day_starts_at_the_first() -> None:
    # 2026-11-01 01:00 CDT (-04:00) falls back to 00:00 CST (-05:00) at 05:00Z.
    _, days = series("2026-10-31", "2026-11-02", "America/Havana", Granularity.DAY)
    assert [b.start for b in days] == [
        utc(2026, 10, 31, 4),
        utc(2026, 11, 1, 4),
        utc(2026, 11, 2, 5),
    ]
    assert durations(days) == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]

    _, hours = series("2026-11-01", "2026-11-01T01:59:59", "America/Havana", Granularity.HOUR)
    assert labels(hours) == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T00:00:00-05:00",
        "2026-11-01T01:00:00-05:00",
    ]
    assert [b.start for b in hours] == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 6),
    ]


def test_santiago_spring_forward_skips_midnight() -> None:
    # 2026-09-06 00:00 (-04:00) jumps to 01:00 (-03:00) at 04:00Z.
    rng = parse_range("2026-09-06", None, "America/Santiago", now=utc(2026, 9, 6, 12))
    assert rng.start == utc(2026, 9, 6, 4)
    assert rng.meta_start() == "2026-09-06T01:00:00-03:00"
    _, days = series("2026-09-05", "2026-09-07", "America/Santiago", Granularity.DAY)
    assert durations(days) == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]


def test_a_calendar_day_that_never_happened_has_no_bucket() -> None:
    # Samoa moved across the date line: 2011-12-29 23:59:59 -10:00 was followed by
    # 2011-12-31 00:00:00 +14:00 (at 10:00Z on the 30th).
    _, days = series("2011-12-29", "2011-12-31", "Pacific/Apia", Granularity.DAY)
    assert days == [
        Bucket("2011-12-29", utc(2011, 12, 29, 10), utc(2011, 12, 30, 10)),
        Bucket("2011-12-31", utc(2011, 12, 30, 10), utc(2011, 12, 31, 10)),
    ]


# --- hour buckets -----------------------------------------------------------------------------


def test_hour_buckets_in_utc_use_z_labels_and_clip() -> None:
    _, result = series("2026-03-26T10:15:30Z", "2026-03-26T12:00:00Z", "UTC", Granularity.HOUR)
    assert result == [
        Bucket("2026-03-26T10:00:00Z", utc(2026, 3, 26, 10, 15, 30), utc(2026, 3, 26, 11)),
        Bucket("2026-03-26T11:00:00Z", utc(2026, 3, 26, 11), utc(2026, 3, 26, 12)),
        Bucket("2026-03-26T12:00:00Z", utc(2026, 3, 26, 12), utc(2026, 3, 26, 12, 0, 0, 1)),
    ]


def test_hour_labels_in_etc_utc_also_use_z() -> None:
    _, result = series("2026-03-08T03:00:00Z", "2026-03-08T03:59:59Z", "Etc/UTC", Granularity.HOUR)
    assert labels(result) == ["2026-03-08T03:00:00Z"]


def test_hour_buckets_new_york_spring_forward_skip_two_oclock() -> None:
    _, result = series("2026-03-08T00:00", "2026-03-08T04:59:59", NY, Granularity.HOUR)
    assert labels(result) == [
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]
    assert [b.start for b in result] == [
        utc(2026, 3, 8, 5),
        utc(2026, 3, 8, 6),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 8),
    ]
    assert durations(result)[:3] == [HOUR, HOUR, HOUR]


def test_hour_buckets_new_york_fall_back_repeat_one_oclock() -> None:
    _, result = series("2026-11-01T00:00", "2026-11-01T02:59:59.999999", NY, Granularity.HOUR)
    assert labels(result) == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]
    assert [b.start for b in result] == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 7),
    ]
    assert durations(result) == [HOUR] * 4


def test_hour_buckets_berlin_spring_forward_skip_two_oclock() -> None:
    _, result = series("2026-03-29T00:00", "2026-03-29T03:59:59", BERLIN, Granularity.HOUR)
    assert labels(result) == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert [b.start for b in result] == [
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29),
        utc(2026, 3, 29, 1),
    ]


def test_hour_buckets_berlin_fall_back_repeat_two_oclock() -> None:
    _, result = series("2026-10-25T01:00", "2026-10-25T03:59:59", BERLIN, Granularity.HOUR)
    assert labels(result) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert [b.start for b in result] == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]


@pytest.mark.parametrize(
    ("tz", "day", "count"),
    [
        (NY, "2026-03-08", 23),
        (NY, "2026-11-01", 25),
        (NY, "2026-06-01", 24),
        (BERLIN, "2026-03-29", 23),
        (BERLIN, "2026-10-25", 25),
        (KOLKATA, "2026-03-29", 24),
    ],
)
def test_hourly_buckets_per_local_day(tz: str, day: str, count: int) -> None:
    _, result = series(day, day, tz, Granularity.HOUR)
    assert len(result) == count
    assert result[0].label.startswith(f"{day}T00:00:00")
    assert result[-1].label.startswith(f"{day}T23:00:00")
    assert durations(result) == [HOUR] * count


def test_hour_buckets_in_kolkata_start_at_utc_half_hour() -> None:
    _, result = series("2026-03-26T10:15", "2026-03-26T12:45", KOLKATA, Granularity.HOUR)
    assert result == [
        Bucket("2026-03-26T10:00:00+05:30", utc(2026, 3, 26, 4, 45), utc(2026, 3, 26, 5, 30)),
        Bucket("2026-03-26T11:00:00+05:30", utc(2026, 3, 26, 5, 30), utc(2026, 3, 26, 6, 30)),
        Bucket("2026-03-26T12:00:00+05:30", utc(2026, 3, 26, 6, 30), utc(2026, 3, 26, 7, 15, 0, 1)),
    ]


def test_hour_buckets_across_a_half_hour_dst_shift() -> None:
    # Lord Howe Island moves from +10:30 to +11:00 at 02:00 local (15:30Z) on 2026-10-04,
    # so there is no 02:00 and the 01:00 bucket runs until 03:00 +11:00: 90 minutes.
    _, result = series(
        "2026-10-04T01:00", "2026-10-04T03:59:59.999999", "Australia/Lord_Howe", Granularity.HOUR
    )
    assert result == [
        Bucket("2026-10-04T01:00:00+10:30", utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16)),
        Bucket("2026-10-04T03:00:00+11:00", utc(2026, 10, 3, 16), utc(2026, 10, 3, 17)),
    ]


# --- week and month buckets -------------------------------------------------------------------


def test_week_buckets_start_on_monday_and_clip_mid_week() -> None:
    # 2026-03-04 is a Wednesday, 2026-03-19 a Thursday.
    _, result = series("2026-03-04", "2026-03-19", "UTC", Granularity.WEEK)
    assert result == [
        Bucket("2026-03-02", utc(2026, 3, 4), utc(2026, 3, 9)),
        Bucket("2026-03-09", utc(2026, 3, 9), utc(2026, 3, 16)),
        Bucket("2026-03-16", utc(2026, 3, 16), utc(2026, 3, 20)),
    ]


def test_week_buckets_from_a_monday_and_a_sunday() -> None:
    _, result = series("2026-03-02", "2026-03-08", "UTC", Granularity.WEEK)
    assert result == [Bucket("2026-03-02", utc(2026, 3, 2), utc(2026, 3, 9))]
    _, result = series("2026-03-08", "2026-03-09", "UTC", Granularity.WEEK)
    assert labels(result) == ["2026-03-02", "2026-03-09"]


def test_week_buckets_in_new_york_across_dst() -> None:
    _, result = series("2026-03-02", "2026-03-15", NY, Granularity.WEEK)
    assert result == [
        Bucket("2026-03-02", utc(2026, 3, 2, 5), utc(2026, 3, 9, 4)),
        Bucket("2026-03-09", utc(2026, 3, 9, 4), utc(2026, 3, 16, 4)),
    ]
    assert durations(result) == [timedelta(days=7) - HOUR, timedelta(days=7)]


def test_week_buckets_across_a_year_end_use_iso_weeks() -> None:
    # 2026-12-28 is a Monday; ISO week 53 of 2026 runs into 2027.
    _, result = series("2026-12-30", "2027-01-05", "UTC", Granularity.WEEK)
    assert labels(result) == ["2026-12-28", "2027-01-04"]


def test_month_buckets_across_a_year_end_clip_first_and_last() -> None:
    _, result = series("2026-11-15", "2027-02-10", "UTC", Granularity.MONTH)
    assert result == [
        Bucket("2026-11-01", utc(2026, 11, 15), utc(2026, 12, 1)),
        Bucket("2026-12-01", utc(2026, 12, 1), utc(2027, 1, 1)),
        Bucket("2027-01-01", utc(2027, 1, 1), utc(2027, 2, 1)),
        Bucket("2027-02-01", utc(2027, 2, 1), utc(2027, 2, 11)),
    ]


def test_month_buckets_in_new_york_follow_local_first_of_month() -> None:
    _, result = series("2026-10-01", "2026-12-31", NY, Granularity.MONTH)
    assert result == [
        Bucket("2026-10-01", utc(2026, 10, 1, 4), utc(2026, 11, 1, 4)),
        Bucket("2026-11-01", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5)),
        Bucket("2026-12-01", utc(2026, 12, 1, 5), utc(2027, 1, 1, 5)),
    ]
    assert durations(result)[1] == timedelta(days=30, hours=1)


def test_month_buckets_in_kolkata() -> None:
    _, result = series("2026-02-10", "2026-03-05", KOLKATA, Granularity.MONTH)
    assert result == [
        Bucket("2026-02-01", utc(2026, 2, 9, 18, 30), utc(2026, 2, 28, 18, 30)),
        Bucket("2026-03-01", utc(2026, 2, 28, 18, 30), utc(2026, 3, 5, 18, 30)),
    ]


@pytest.mark.parametrize("granularity", list(Granularity))
@pytest.mark.parametrize(
    "tz",
    [
        "UTC",
        NY,
        BERLIN,
        KOLKATA,
        "America/Havana",
        "America/Santiago",
        "Asia/Beirut",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Pacific/Chatham",
    ],
)
def test_buckets_tile_a_whole_year(tz: str, granularity: Granularity) -> None:
    _, result = series("2026-01-01T07:13:00Z", "2027-01-01T03:21:00Z", tz, granularity)
    starts = [b.start for b in result]
    assert starts == sorted(starts)
    assert len(set(labels(result))) == len(result)


# --- the 10,000 bucket limit ------------------------------------------------------------------


def test_exactly_max_hour_buckets_is_allowed() -> None:
    # 10,000 hours after 2026-01-01T00:00Z is 2027-02-21T16:00Z (416 days and 16 hours).
    _, result = series(
        "2026-01-01T00:00:00Z", "2027-02-21T15:59:59.999999Z", "UTC", Granularity.HOUR
    )
    assert len(result) == MAX_BUCKETS == 10_000
    assert result[-1].label == "2027-02-21T15:00:00Z"


def test_one_hour_bucket_over_the_limit_is_rejected() -> None:
    rng = parse_range("2026-01-01T00:00:00Z", "2027-02-21T16:00:00Z")
    with pytest.raises(InvalidInput) as error:
        buckets(rng, Granularity.HOUR)
    assert field_of(error) == "granularity"
    message = error.value.details[0].message
    assert "10,000" in message
    assert "coarser granularity" in message
    assert "shorter range" in message


def test_exactly_max_day_buckets_is_allowed_and_one_more_is_not() -> None:
    # 2026..2052 hold 27 * 365 + 7 leap days = 9,862 days; 137 more from 2053-01-01 is May 18.
    _, result = series("2026-01-01", "2053-05-18", NY, Granularity.DAY)
    assert len(result) == 10_000
    assert result[-1].label == "2053-05-18"
    with pytest.raises(InvalidInput) as error:
        buckets(parse_range("2026-01-01", "2053-05-19", NY), Granularity.DAY)
    assert field_of(error) == "granularity"


def test_exactly_max_week_buckets_is_allowed_and_one_more_is_not() -> None:
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    last_sunday = (monday + timedelta(weeks=10_000) - timedelta(days=1)).date().isoformat()
    assert len(series(monday.date().isoformat(), last_sunday, "UTC", Granularity.WEEK)[1]) == 10_000
    with pytest.raises(InvalidInput):
        buckets(parse_range("2026-01-04", last_sunday), Granularity.WEEK)


def test_exactly_max_month_buckets_is_allowed_and_one_more_is_not() -> None:
    # 2000-01 through 2833-04: 833 * 12 + 4 = 10,000 months.
    _, result = series("2000-01-01", "2833-04-30", "UTC", Granularity.MONTH)
    assert len(result) == 10_000
    assert result[-1].label == "2833-04-01"
    with pytest.raises(InvalidInput):
        buckets(parse_range("2000-01-01", "2833-05-01"), Granularity.MONTH)


def test_huge_hourly_range_is_refused() -> None:
    # A century of hours: refused by the cheap estimate, before any bucket is built.
    rng = parse_range("1926-01-01", "2025-12-31", NY)
    with pytest.raises(InvalidInput):
        buckets(rng, Granularity.HOUR)


def test_ten_thousand_hour_buckets_across_dst_are_allowed() -> None:
    rng = parse_range("2026-01-01", "2027-02-21T15:59:59.999999", NY)
    result = buckets(rng, Granularity.HOUR)
    assert len(result) == 10_000

"""The reads the benchmark times: the windows (UTC, New York, unaligned edges) and each request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.dataset import (
    DatasetSpec,
)

NEW_YORK = "America/New_York"


UNALIGNED = "UTC, unaligned edges"


GRAPHQL_QUERY = """
query Bench($siteId: String!, $start: String, $end: String, $timezone: String) {
  revenue(siteId: $siteId, start: $start, end: $end, timezone: $timezone) {
    totalRevenue mrr conversionRate
  }
  goals(siteId: $siteId, start: $start, end: $end, timezone: $timezone) {
    name uniqueVisitors completionCount conversionRate
  }
}
"""


# Filtered reads and breakdowns (CONTRACT §11), timed on the UTC window and checked against
# naive SQL: (read name, path, extra parameters, the visitor condition in naive SQL).
FILTERED_READS: tuple[tuple[str, str, dict[str, str], str], ...] = (
    (
        "GET /api/v1/goals, device_type is mobile",
        "/api/v1/goals",
        {"device_type[is]": "mobile"},
        "device_type = 'mobile'",
    ),
    (
        "GET /api/v1/goals, country is_not United States",
        "/api/v1/goals",
        {"country[is_not]": "United States"},
        "(country IS NULL OR country <> 'United States')",
    ),
    (
        "GET /api/v1/goals, source contains GOO",
        "/api/v1/goals",
        {"source[contains]": "GOO"},
        "lower(source) LIKE '%goo%'",
    ),
    (
        "GET /api/v1/revenue, device_type is mobile",
        "/api/v1/revenue",
        {"device_type[is]": "mobile"},
        "device_type = 'mobile'",
    ),
)


GRAPHQL_FILTERED_QUERY = """
query BenchFiltered($siteId: String!, $start: String, $end: String, $filters: [FilterInput!]) {
  revenue(siteId: $siteId, start: $start, end: $end, filters: $filters) {
    totalRevenue mrr payingVisitors
  }
  revenueBreakdown(siteId: $siteId, dimension: SOURCE, start: $start, end: $end,
                   filters: $filters) {
    value totalRevenue payingVisitors
  }
  revenueTimeseries(siteId: $siteId, start: $start, end: $end, filters: $filters) {
    period newRevenue refundRevenue
  }
}
"""

# Filtered reads timed on the UTC window without a naive check of their own: the same
# resolvers as the checked reads above (and the tests compare them with naive sums).
FILTERED_TIMED_ONLY: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "GET /api/v1/revenue/timeseries (day), device_type is mobile",
        "/api/v1/revenue/timeseries",
        {"granularity": "day", "device_type[is]": "mobile"},
    ),
    (
        "GET /api/v1/revenue/breakdown (source), device_type is mobile",
        "/api/v1/revenue/breakdown",
        {"dimension": "source", "device_type[is]": "mobile"},
    ),
)
GRAPHQL_FILTERED_READ = "POST /graphql (revenue + breakdown + series), device_type is mobile"


BREAKDOWN_READS: tuple[tuple[str, str], ...] = (
    ("GET /api/v1/revenue/breakdown (source)", "source"),
    ("GET /api/v1/revenue/breakdown (country)", "country"),
)


@dataclass(frozen=True, slots=True)
class Window:
    """A read's time range: query parameters for the API and the instants they must mean."""

    label: str
    start: str
    end: str
    timezone: str | None
    start_at: datetime
    end_at: datetime

    def params(self) -> dict[str, str]:
        """The ``start``/``end``/``timezone`` query parameters."""
        values = {"start": self.start, "end": self.end}
        if self.timezone is not None:
            values["timezone"] = self.timezone
        return values


@dataclass(frozen=True, slots=True)
class Read:
    """One request to time."""

    name: str
    window: Window
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    @property
    def is_graphql(self) -> bool:
        """Whether this is the GraphQL read (reported as n/a when /graphql does not answer)."""
        return self.path == "/graphql"


def windows(spec: DatasetSpec) -> list[Window]:
    """The timed ranges: the last 30 whole days in UTC and New York, and one unaligned range."""
    first, last = spec.last_days(30)
    new_york = ZoneInfo(NEW_YORK)
    one_us = timedelta(microseconds=1)

    def day_start(day: date, zone: ZoneInfo | None) -> datetime:
        return datetime.combine(day, clock(), zone or UTC).astimezone(UTC)

    after = last + timedelta(days=1)
    ragged_start = day_start(first, None) + timedelta(minutes=7, seconds=30)
    ragged_end = day_start(after, None) - timedelta(minutes=7, seconds=30)
    return [
        Window(
            "UTC",
            first.isoformat(),
            last.isoformat(),
            None,
            day_start(first, None),
            day_start(after, None) - one_us,
        ),
        Window(
            NEW_YORK,
            first.isoformat(),
            last.isoformat(),
            NEW_YORK,
            day_start(first, new_york),
            day_start(after, new_york) - one_us,
        ),
        Window(
            UNALIGNED,
            ragged_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ragged_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            None,
            ragged_start,
            ragged_end,
        ),
    ]


def reads_for(site_id: str, spec: DatasetSpec) -> list[Read]:
    """Every timed request: the four REST reads and the GraphQL read per window."""
    result: list[Read] = []
    for window in windows(spec):
        params = {"site_id": site_id, **window.params()}
        result.append(Read("GET /api/v1/goals", window, "GET", "/api/v1/goals", params))
        if window.label == UNALIGNED:
            continue
        result += [
            Read(
                "GET /api/v1/goals/signup/completions",
                window,
                "GET",
                "/api/v1/goals/signup/completions",
                {**params, "limit": "100"},
            ),
            Read("GET /api/v1/revenue", window, "GET", "/api/v1/revenue", params),
            Read(
                "GET /api/v1/revenue/timeseries (day)",
                window,
                "GET",
                "/api/v1/revenue/timeseries",
                {**params, "granularity": "day"},
            ),
            Read(
                "POST /graphql (revenue + goals)",
                window,
                "POST",
                "/graphql",
                body={
                    "query": GRAPHQL_QUERY,
                    "variables": {
                        "siteId": site_id,
                        "start": window.start,
                        "end": window.end,
                        "timezone": window.timezone or "UTC",
                    },
                },
            ),
        ]
        if window.label == "UTC":
            result += [
                Read(name, window, "GET", path, {**params, **extra})
                for name, path, extra, _ in FILTERED_READS
            ]
            result += [
                Read(name, window, "GET", "/api/v1/revenue/breakdown", {**params, "dimension": dim})
                for name, dim in BREAKDOWN_READS
            ]
            result += [
                Read(name, window, "GET", path, {**params, **extra})
                for name, path, extra in FILTERED_TIMED_ONLY
            ]
            result.append(
                Read(
                    GRAPHQL_FILTERED_READ,
                    window,
                    "POST",
                    "/graphql",
                    body={
                        "query": GRAPHQL_FILTERED_QUERY,
                        "variables": {
                            "siteId": site_id,
                            "start": window.start,
                            "end": window.end,
                            "filters": [
                                {"dimension": "DEVICE_TYPE", "operator": "IS", "values": ["mobile"]}
                            ],
                        },
                    },
                )
            )
    return result

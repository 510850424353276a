"""Read-path benchmark over real HTTP, reported as ratios against baselines from the same run.

``python -m benchmarks.run [--visitors N] [--pageviews-per-visitor K] [--postgres URL]
[--runs 20] [--rebuild] [--explain]`` builds (or reuses) the dataset, issues a read key, starts
``uvicorn`` on a free port and times each 30-day read sequentially with httpx: median and p95 of
``--runs`` requests, last 30 whole days, in UTC and in America/New_York, plus one UTC range whose
edges do not fall on a 15-minute slot boundary.

Two baselines are measured in the same run, so results compare across machines:

* the naive exact query, ``count(distinct visitor_id)`` over the range's pageviews, timed directly
  on the database;
* ``GET /healthz``, the HTTP floor (one round trip through the same server and client).

Every run serves a pristine copy of the dataset (a file copy on SQLite, a ``TEMPLATE`` clone on
PostgreSQL), so caches the product derives on first read start empty and the cached dataset is
never modified: "first ms" is the cold first request of each read, medians are warm.

Last, the UTC goals read is timed right after each of ``--runs`` goal completions backdated into
the range (what a site receiving late events pays when finished days are cached), and checked
again.

The API's ``meta.visitors`` and per-goal counts are checked against naive exact SQL, and so are
the filtered reads (``is``, ``is_not``, ``contains``) and the revenue breakdowns by source and
by country (every row's visitors and net revenue), timed on the UTC window. Results go
to a Rich table and to ``.bench/results-<backend>.json``. ``--explain`` also times the resolvers
in-process, statement by statement, with query plans of the slow statements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from benchmarks import explain
from benchmarks.dataset import (
    SITE_ID,
    TABLE_COLUMNS,
    BuildResult,
    DatasetSpec,
    asyncpg_dsn,
    build_postgres,
    build_sqlite,
    clone_postgres,
    drop_postgres,
    sqlite_timestamp_formatter,
)
from datasaas.resolvers.sites import Scope, create_key
from datasaas.storage.engine import Database

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = REPO_ROOT / ".bench"
BUDGET_MS = 100.0
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
NOT_GENERATED = frozenset({"site", "api_key", "idempotency_record", "alembic_version"})
"""Tables the dataset leaves to the product (the site row is created through its resolver)."""
NAIVE_DISTINCT_SQL = (
    "SELECT COUNT(DISTINCT visitor_id) FROM pageview "
    "WHERE site_id = ? AND occurred_at BETWEEN ? AND ?"
)
NAIVE_VISITORS_SQL = (
    "SELECT COUNT(*) FROM ("
    "SELECT visitor_id FROM pageview WHERE site_id = ? AND occurred_at BETWEEN ? AND ? UNION "
    "SELECT visitor_id FROM goal_completion WHERE site_id = ? "
    "AND completed_at BETWEEN ? AND ? UNION "
    "SELECT visitor_id FROM payment WHERE site_id = ? AND paid_at BETWEEN ? AND ?"
    ") AS active"
)
NAIVE_GOALS_SQL = (
    "SELECT g.name, COUNT(DISTINCT c.visitor_id), COUNT(*) FROM goal_completion c "
    "JOIN goal g ON g.id = c.goal_id "
    "WHERE c.site_id = ? AND c.completed_at BETWEEN ? AND ? GROUP BY g.name"
)


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
BREAKDOWN_READS: tuple[tuple[str, str], ...] = (
    ("GET /api/v1/revenue/breakdown (source)", "source"),
    ("GET /api/v1/revenue/breakdown (country)", "country"),
)
NAIVE_ACTIVE_SQL = (
    "SELECT visitor_id FROM pageview WHERE site_id = ? AND occurred_at BETWEEN ? AND ? UNION "
    "SELECT visitor_id FROM goal_completion WHERE site_id = ? "
    "AND completed_at BETWEEN ? AND ? UNION "
    "SELECT visitor_id FROM payment WHERE site_id = ? AND paid_at BETWEEN ? AND ?"
)
NAIVE_NET_SQL = (
    "SUM(CASE WHEN p.payment_type = 'refund' THEN -p.reporting_amount_minor "
    "ELSE p.reporting_amount_minor END)"
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


@dataclass(slots=True)
class ReadResult:
    """Timings of one read; ``status`` is ``ok``, ``n/a`` (GraphQL missing) or ``error``."""

    name: str
    window: str
    status: str
    note: str = ""
    first_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    p95_ms: float | None = None
    ratio_naive: float | None = None
    ratio_floor: float | None = None
    within_budget: bool | None = None


@dataclass(frozen=True, slots=True)
class ExactnessCheck:
    """An API number against the naive exact SQL answer for the same range."""

    window: str
    metric: str
    api: int
    naive: int
    matches: bool
    detail: str = ""


@dataclass(slots=True)
class BenchReport:
    """Everything one run measured; serialised to ``results-<backend>.json``."""

    backend: str
    database: str
    spec: dict[str, Any]
    build: dict[str, Any]
    runs: int
    budget_ms: float
    naive_ms: float
    naive_samples_ms: list[float]
    naive_visitors: int
    floor_ms: float
    floor_p95_ms: float
    reads: list[ReadResult]
    exactness: list[ExactnessCheck]
    unfilled_tables: list[str]
    machine: dict[str, Any]
    explain: list[dict[str, Any]] | None = None
    finished_at: str = ""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run; the defaults are ``make bench``."""

    visitors: int = 1_000_000
    pageviews_per_visitor: int = 5
    runs: int = 20
    warmup: int = 2
    naive_runs: int = 5
    postgres: str | None = None
    postgres_db: str = "datasaas_bench"
    keep_postgres: bool = False
    rebuild: bool = False
    explain: bool = False
    cache_dir: Path = DEFAULT_CACHE_DIR
    results_dir: Path | None = None


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (``fraction`` 0.95 for p95)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


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
    return result


# --- the database, directly -----------------------------------------------------------------


class DirectDatabase:
    """Plain driver access (stdlib sqlite3 or asyncpg) for baselines and exactness checks."""

    def __init__(self, url: str) -> None:
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._runner: asyncio.Runner | None = None
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None
        if self.is_sqlite:
            path = make_url(url).database
            self._sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self._format = sqlite_timestamp_formatter()
        else:
            self._runner = asyncio.Runner()
            self._pg = self._runner.run(asyncpg.connect(asyncpg_dsn(url)))

    def bound(self, at: datetime) -> Any:
        """A range bound as the driver needs it (SQLite text, or an aware datetime)."""
        if self.is_sqlite:
            micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
            return self._format(micros)
        return at

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders) and return every row."""
        if self._sqlite is not None:
            return [tuple(row) for row in self._sqlite.execute(sql, args).fetchall()]
        numbered = sql
        for number in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${number}", 1)
        assert self._runner is not None
        return [tuple(row) for row in self._runner.run(self._pg.fetch(numbered, *args))]

    def tables(self) -> list[str]:
        """Names of the tables in the database."""
        if self._sqlite is not None:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        else:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        return [str(row[0]) for row in self.rows(sql)]

    def server_version(self) -> str:
        """The database engine's version string."""
        if self._sqlite is not None:
            return f"SQLite {sqlite3.sqlite_version}"
        return str(self.rows("SELECT version()")[0][0])

    def close(self) -> None:
        """Close the connection."""
        if self._sqlite is not None:
            self._sqlite.close()
        if self._runner is not None:
            self._runner.run(self._pg.close())
            self._runner.close()


def naive_baseline(direct: DirectDatabase, window: Window, runs: int) -> tuple[list[float], int]:
    """Time the naive ``count(distinct visitor_id)`` over pageviews: (samples in ms, its count)."""
    args = (SITE_ID, direct.bound(window.start_at), direct.bound(window.end_at))
    count = int(direct.rows(NAIVE_DISTINCT_SQL, *args)[0][0])  # warm-up
    samples: list[float] = []
    for _ in range(runs):
        began = time.perf_counter()
        direct.rows(NAIVE_DISTINCT_SQL, *args)
        samples.append((time.perf_counter() - began) * 1000)
    return samples, count


def check_exactness(
    direct: DirectDatabase, window: Window, goals_body: dict[str, Any]
) -> list[ExactnessCheck]:
    """Compare ``meta.visitors`` and every goal's counts with naive exact SQL over the range."""
    start, end = direct.bound(window.start_at), direct.bound(window.end_at)
    naive_visitors = int(
        direct.rows(
            NAIVE_VISITORS_SQL, SITE_ID, start, end, SITE_ID, start, end, SITE_ID, start, end
        )[0][0]
    )
    api_visitors = int(goals_body["meta"]["visitors"])
    naive_goals = {
        str(name): (int(uniques), int(count))
        for name, uniques, count in direct.rows(NAIVE_GOALS_SQL, SITE_ID, start, end)
    }
    api_goals = {
        str(row["goal_name"]): (int(row["unique_visitors"]), int(row["completion_count"]))
        for row in goals_body["results"]
        if row["completion_count"]
    }
    wrong = sorted(
        name
        for name in naive_goals.keys() | api_goals.keys()
        if naive_goals.get(name) != api_goals.get(name)
    )
    return [
        ExactnessCheck(
            window.label,
            "visitors",
            api_visitors,
            naive_visitors,
            api_visitors == naive_visitors,
        ),
        ExactnessCheck(
            window.label,
            "goal completions",
            sum(count for _, count in api_goals.values()),
            sum(count for _, count in naive_goals.values()),
            not wrong,
            f"differs for {', '.join(wrong)}" if wrong else f"{len(naive_goals)} goals equal",
        ),
    ]


def _range_args(direct: DirectDatabase, window: Window) -> tuple[Any, ...]:
    start, end = direct.bound(window.start_at), direct.bound(window.end_at)
    return (SITE_ID, start, end) * 3


def check_filtered(
    direct: DirectDatabase, window: Window, read_name: str, condition: str, body: dict[str, Any]
) -> list[ExactnessCheck]:
    """A filtered read against naive SQL restricted to the matching visitors."""
    matching = f"SELECT id FROM visitor WHERE site_id = ? AND {condition}"
    start, end = direct.bound(window.start_at), direct.bound(window.end_at)
    if "revenue" in read_name:
        naive_minor = direct.rows(
            f"SELECT COALESCE({NAIVE_NET_SQL}, 0) FROM payment p WHERE p.site_id = ? "
            f"AND p.paid_at BETWEEN ? AND ? AND p.visitor_id IN ({matching})",
            SITE_ID,
            start,
            end,
            SITE_ID,
        )[0][0]
        api_minor = round(float(body["results"]["total_revenue"]) * 100)
        return [
            ExactnessCheck(
                window.label,
                f"total_revenue, minor ({read_name.split(', ', 1)[1]})",
                api_minor,
                int(naive_minor),
                api_minor == int(naive_minor),
            )
        ]
    visitors = int(
        direct.rows(
            f"SELECT COUNT(*) FROM ({NAIVE_ACTIVE_SQL}) AS a WHERE a.visitor_id IN ({matching})",
            *_range_args(direct, window),
            SITE_ID,
        )[0][0]
    )
    naive_goals = {
        str(name): (int(uniques), int(count))
        for name, uniques, count in direct.rows(
            "SELECT g.name, COUNT(DISTINCT c.visitor_id), COUNT(*) FROM goal_completion c "
            "JOIN goal g ON g.id = c.goal_id WHERE c.site_id = ? "
            f"AND c.completed_at BETWEEN ? AND ? AND c.visitor_id IN ({matching}) "
            "GROUP BY g.name",
            SITE_ID,
            start,
            end,
            SITE_ID,
        )
    }
    api_goals = {
        str(row["goal_name"]): (int(row["unique_visitors"]), int(row["completion_count"]))
        for row in body["results"]
        if row["completion_count"]
    }
    api_visitors = int(body["meta"]["visitors"])
    return [
        ExactnessCheck(
            window.label,
            f"visitors ({read_name.split(', ', 1)[1]})",
            api_visitors,
            visitors,
            api_visitors == visitors,
        ),
        ExactnessCheck(
            window.label,
            f"goal completions ({read_name.split(', ', 1)[1]})",
            sum(count for _, count in api_goals.values()),
            sum(count for _, count in naive_goals.values()),
            api_goals == naive_goals,
        ),
    ]


def check_breakdown(
    direct: DirectDatabase, window: Window, dimension: str, body: dict[str, Any]
) -> list[ExactnessCheck]:
    """Every breakdown row's visitors and net revenue against naive grouped SQL."""
    start, end = direct.bound(window.start_at), direct.bound(window.end_at)
    naive_visitors = {
        row[0]: int(row[1])
        for row in direct.rows(
            f"SELECT v.{dimension}, COUNT(*) FROM visitor v "
            f"WHERE v.id IN ({NAIVE_ACTIVE_SQL}) GROUP BY v.{dimension}",
            *_range_args(direct, window),
        )
    }
    naive_money = {
        row[0]: int(row[1])
        for row in direct.rows(
            f"SELECT v.{dimension}, {NAIVE_NET_SQL} FROM payment p "
            "JOIN visitor v ON v.id = p.visitor_id WHERE p.site_id = ? "
            f"AND p.paid_at BETWEEN ? AND ? GROUP BY v.{dimension}",
            SITE_ID,
            start,
            end,
        )
    }
    rows = body["results"]
    api_visitors = {row["value"]: int(row["visitors"]) for row in rows}
    api_money = {
        row["value"]: round(float(row["total_revenue"]) * 100)
        for row in rows
        if row["value"] in naive_money or float(row["total_revenue"])
    }
    complete = len(rows) < int(body["meta"]["limit"])
    return [
        ExactnessCheck(
            window.label,
            f"breakdown visitors by {dimension}",
            sum(api_visitors.values()),
            sum(naive_visitors.values()),
            complete and api_visitors == naive_visitors,
            f"{len(api_visitors)} values",
        ),
        ExactnessCheck(
            window.label,
            f"breakdown net revenue, minor, by {dimension}",
            sum(api_money.values()),
            sum(naive_money.values()),
            complete and api_money == naive_money,
        ),
    ]


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(database_url: str, *, timeout: float = 60.0) -> Iterator[str]:
    """Run ``uvicorn datasaas.app:create_app`` on a free port; yield its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATASAAS_DATABASE_URL": database_url,
        "DATASAAS_RATE_LIMIT_PER_MINUTE": "1000000000",
        "DATASAAS_LOG_LEVEL": "warning",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "datasaas.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with status {process.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer /healthz within {timeout:.0f} s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def pristine_copy(build: BuildResult, options: BenchOptions) -> Iterator[str]:
    """A fresh copy of the built dataset for one run; yields its URL (the copy is removed after)."""
    url = make_url(build.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        source = Path(url.database)
        copy = source.with_name(f"run-{source.name}")
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(source, copy)
        try:
            yield url.set(database=str(copy)).render_as_string(hide_password=False)
        finally:
            for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
                leftover.unlink(missing_ok=True)
        return
    assert options.postgres is not None
    name = f"{options.postgres_db}_run"
    asyncio.run(clone_postgres(options.postgres, template=options.postgres_db, name=name))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(drop_postgres(options.postgres, name))


async def issue_key(database_url: str, scope: Scope = Scope.READ) -> str:
    """Create a key of ``scope`` for the benchmark site and return its secret."""
    database = Database(database_url)
    try:
        async with database.write() as session:
            issued = await create_key(
                session, site_id=SITE_ID, scope=scope, name=f"benchmark harness ({scope})"
            )
        return issued.secret
    finally:
        await database.dispose()


def _send(client: httpx.Client, read: Read) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    response = client.request(read.method, read.path, params=read.params or None, json=read.body)
    return (time.perf_counter() - began) * 1000, response


def _failure(read: Read, response: httpx.Response) -> str | None:
    """Why a response does not count as an answer, or None when it does."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if read.is_graphql:
        try:
            payload = response.json()
        except ValueError:
            return "response is not JSON"
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors or not isinstance(payload, dict) or payload.get("data") is None:
            message = str(errors[0].get("message", errors[0])) if errors else "no data"
            return f"GraphQL error: {message[:120]}"
    return None


def measure(
    client: httpx.Client, reads: Sequence[Read], *, runs: int, warmup: int
) -> tuple[list[ReadResult], list[httpx.Response]]:
    """Time every read: one cold pass in order, ``warmup - 1`` untimed passes, ``runs`` timed ones.

    Passes go round-robin over the reads, so load from elsewhere on the machine spreads evenly
    over them (and over the HTTP floor, when it is one of the reads) instead of hitting one.
    Returns the results and each read's last response, in ``reads`` order.
    """
    results: list[ReadResult] = []
    last: list[httpx.Response] = []
    for read in reads:
        first_ms, response = _send(client, read)
        problem = _failure(read, response)
        status = "ok" if problem is None else "n/a" if read.is_graphql else "error"
        results.append(ReadResult(read.name, read.window.label, status, problem or "", first_ms))
        last.append(response)
    for _ in range(max(0, warmup - 1)):
        for read, result in zip(reads, results, strict=True):
            if result.status == "ok":
                _send(client, read)
    for _ in range(runs):
        for index, (read, result) in enumerate(zip(reads, results, strict=True)):
            if result.status != "ok":
                continue
            elapsed, response = _send(client, read)
            problem = _failure(read, response)
            if problem is not None:
                result.status, result.note = "error", problem
                continue
            result.samples_ms.append(elapsed)
            last[index] = response
    for result in results:
        if result.status == "ok":
            result.median_ms = statistics.median(result.samples_ms)
            result.p95_ms = percentile(result.samples_ms, 0.95)
    return results, last


BACKDATED_READ = "GET /api/v1/goals, each after a backdated POST /api/v1/goals"


def measure_backdated(
    client: httpx.Client, writer: httpx.Client, window: Window, *, runs: int
) -> tuple[ReadResult, httpx.Response | None]:
    """Time the goals read right after a goal completion backdated into the range, ``runs`` times.

    Each write lands on an already finished day, so a cache of finished days must drop that day
    and the read after it pays for rebuilding it: the steady state of a site that receives late
    events (payments with a past ``paid_at``, server-side goals with a past ``completed_at``).
    """
    middle = window.start_at + (window.end_at - window.start_at) / 2
    read = Read(
        BACKDATED_READ, window, "GET", "/api/v1/goals", {"site_id": SITE_ID, **window.params()}
    )
    result = ReadResult(read.name, window.label, "ok")
    response = None
    for index in range(runs):
        completed_at = middle + timedelta(seconds=index)
        posted = writer.post(
            "/api/v1/goals",
            params={"site_id": SITE_ID},
            json={
                "name": "signup",
                "visitor_id": f"bench-late-{index}",
                "completed_at": completed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        if posted.status_code != 200:
            result.status, result.note = "error", f"POST /api/v1/goals: HTTP {posted.status_code}"
            return result, None
        elapsed, response = _send(client, read)
        problem = _failure(read, response)
        if problem is not None:
            result.status, result.note = "error", problem
            return result, None
        result.samples_ms.append(elapsed)
    result.first_ms = result.samples_ms[0]
    result.median_ms = statistics.median(result.samples_ms)
    result.p95_ms = percentile(result.samples_ms, 0.95)
    return result, response


# --- the run --------------------------------------------------------------------------------


def _build(options: BenchOptions, spec: DatasetSpec, console: Console) -> BuildResult:
    if options.postgres:
        return asyncio.run(
            build_postgres(
                spec,
                options.postgres,
                options.postgres_db,
                rebuild=options.rebuild,
                log=console.print,
            )
        )
    return build_sqlite(spec, options.cache_dir, rebuild=options.rebuild, log=console.print)


def run_benchmark(options: BenchOptions, *, console: Console | None = None) -> BenchReport:
    """Build or reuse the dataset, serve it, time every read, check exactness; return a report."""
    console = console or Console()
    spec = DatasetSpec(
        visitors=options.visitors, pageviews_per_visitor=options.pageviews_per_visitor
    )
    backend = "postgresql" if options.postgres else "sqlite"
    build = _build(options, spec, console)
    try:
        began = time.perf_counter()
        with pristine_copy(build, options) as run_url:
            console.print(
                f"Pristine copy for this run ready in {time.perf_counter() - began:.1f} s"
            )
            report = _measure_everything(options, spec, backend, build, run_url, console)
    finally:
        if options.postgres and not options.keep_postgres:
            asyncio.run(drop_postgres(options.postgres, options.postgres_db))
            console.print(f"Dropped PostgreSQL database {options.postgres_db}")
    results_dir = options.results_dir or options.cache_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"results-{backend}.json"
    path.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    print_report(report, console)
    console.print(f"Results written to {path}")
    return report


def _measure_everything(
    options: BenchOptions,
    spec: DatasetSpec,
    backend: str,
    build: BuildResult,
    url: str,
    console: Console,
) -> BenchReport:
    load_before = os.getloadavg()
    direct = DirectDatabase(url)
    try:
        unfilled = sorted(set(direct.tables()) - set(TABLE_COLUMNS) - NOT_GENERATED)
    finally:
        direct.close()
    if unfilled:
        console.print(
            f"[yellow]note:[/yellow] tables the generator does not fill (empty at start): "
            f"{', '.join(unfilled)} — fine for caches derived on read, wrong for data "
            f"maintained on ingest (the exactness check below would show it)"
        )
    secret = asyncio.run(issue_key(url))
    reads = reads_for(SITE_ID, spec)
    goals_bodies: dict[str, dict[str, Any]] = {}
    console.print(
        f"Serving {backend} with uvicorn: {len(reads)} reads + /healthz, 1 cold pass, "
        f"{max(0, options.warmup - 1)} warm-up and {options.runs} timed passes, round-robin"
    )
    with (
        serve(url) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=600
        ) as client,
    ):
        floor_read = Read("GET /healthz", windows(spec)[0], "GET", "/healthz")
        measured, responses = measure(
            client, [floor_read, *reads], runs=options.runs, warmup=options.warmup
        )
        floor, results = measured[0], measured[1:]
        if floor.median_ms is None or floor.p95_ms is None:
            raise RuntimeError(f"GET /healthz failed: {floor.note}")
        attribution_bodies: dict[str, dict[str, Any]] = {}
        for read, result, response in zip(reads, results, responses[1:], strict=True):
            if read.name == "GET /api/v1/goals" and result.status == "ok":
                goals_bodies[read.window.label] = response.json()
            elif read.window.label == "UTC" and result.status == "ok":
                attribution_bodies[read.name] = response.json()

        direct = DirectDatabase(url)
        try:
            naive_samples, naive_visitors = naive_baseline(
                direct, windows(spec)[0], options.naive_runs
            )
            exactness = [
                check
                for window in windows(spec)
                if window.label in goals_bodies
                for check in check_exactness(direct, window, goals_bodies[window.label])
            ]
            utc_window = windows(spec)[0]
            for name, _, _, condition in FILTERED_READS:
                if name in attribution_bodies:
                    exactness += check_filtered(
                        direct, utc_window, name, condition, attribution_bodies[name]
                    )
            for name, dimension in BREAKDOWN_READS:
                if name in attribution_bodies:
                    exactness += check_breakdown(
                        direct, utc_window, dimension, attribution_bodies[name]
                    )
            server = direct.server_version()
            # Last, as it writes: reads after late events, then exactness again.
            write_secret = asyncio.run(issue_key(url, Scope.READ_WRITE))
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {write_secret}"}, timeout=600
            ) as writer:
                utc = windows(spec)[0]
                backdated, body = measure_backdated(client, writer, utc, runs=options.runs)
            results.append(backdated)
            if body is not None:
                after = replace(utc, label="UTC, after backdated writes")
                exactness += check_exactness(direct, after, body.json())
        finally:
            direct.close()
    naive_ms = statistics.median(naive_samples)
    for result in results:
        if result.median_ms is not None and result.p95_ms is not None:
            result.ratio_naive = result.median_ms / naive_ms
            result.ratio_floor = result.median_ms / floor.median_ms
            result.within_budget = result.p95_ms <= BUDGET_MS

    profiles = None
    if options.explain:
        profiles = asyncio.run(explain.profile_reads(url, secret, windows(spec), console=console))
    return BenchReport(
        backend=backend,
        database=make_url(build.database_url).render_as_string(hide_password=True),
        spec={**asdict(spec), "pageviews": spec.pageviews},
        build={
            "cached": build.cached,
            "seconds": build.seconds,
            "rows": build.rows,
            "phases": build.phases,
        },
        runs=options.runs,
        budget_ms=BUDGET_MS,
        naive_ms=naive_ms,
        naive_samples_ms=naive_samples,
        naive_visitors=naive_visitors,
        floor_ms=floor.median_ms,
        floor_p95_ms=floor.p95_ms,
        reads=results,
        exactness=exactness,
        unfilled_tables=unfilled,
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "database": server,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        explain=profiles,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}x"


def print_report(report: BenchReport, console: Console) -> None:
    """Print the results table and the exactness checks."""
    spec = report.spec
    title = (
        f"{report.backend}: {spec['visitors']:,} visitors / {spec['pageviews']:,} pageviews, "
        f"last 30 days, {report.runs} sequential requests per read"
    )
    load = report.machine["load_average_after"]
    caption = (
        f"budget: p95 ≤ {report.budget_ms:.0f} ms over HTTP (warm). first ms: the run's first "
        "request of that read, on a pristine copy (caches derived on read still empty).\n"
        f"{report.machine['cpus']} CPUs, load average after the run {load[0]:.2f} / "
        f"{load[1]:.2f} / {load[2]:.2f} (1/5/15 min): other work on the machine inflates p95"
    )
    table = Table(title=title, caption=caption)
    for name, justify in (
        ("read", "left"),
        ("range", "left"),
        ("first ms", "right"),
        ("median ms", "right"),
        ("p95 ms", "right"),
        ("x naive", "right"),
        ("x HTTP floor", "right"),
        ("budget", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    naive_p95 = percentile(report.naive_samples_ms, 0.95)
    table.add_row(
        "baseline: naive count(distinct visitor_id) FROM pageview (SQL)",
        "UTC",
        "",
        _ms(report.naive_ms),
        _ms(naive_p95),
        "1.00x",
        _ratio(report.naive_ms / report.floor_ms),
        "",
    )
    table.add_row(
        "baseline: GET /healthz (HTTP floor)",
        "",
        "",
        _ms(report.floor_ms),
        _ms(report.floor_p95_ms),
        _ratio(report.floor_ms / report.naive_ms),
        "1.00x",
        "",
        end_section=True,
    )
    for result in report.reads:
        if result.status != "ok":
            verdict = "n/a" if result.status == "n/a" else "[red]ERROR[/red]"
            table.add_row(result.name, result.window, "", result.note, "", "", "", verdict)
            continue
        verdict = "[green]PASS[/green]" if result.within_budget else "[red]FAIL[/red]"
        table.add_row(
            result.name,
            result.window,
            _ms(result.first_ms),
            _ms(result.median_ms),
            _ms(result.p95_ms),
            _ratio(result.ratio_naive),
            _ratio(result.ratio_floor),
            verdict,
        )
    console.print(table)
    for check in report.exactness:
        verdict = "[green]match[/green]" if check.matches else "[red]MISMATCH[/red]"
        detail = f" ({check.detail})" if check.detail else ""
        console.print(
            f"exactness {check.window:<28} {check.metric:<17} API {check.api:>10,}  "
            f"naive SQL {check.naive:>10,}  {verdict}{detail}"
        )


def parse_args(argv: Sequence[str] | None = None) -> BenchOptions:
    """Parse the command line into BenchOptions."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--pageviews-per-visitor", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="timed requests per read")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per read first")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="benchmark PostgreSQL: an admin URL such as "
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--postgres-db", default="datasaas_bench", help="database to (re)create")
    parser.add_argument(
        "--keep-postgres",
        action="store_true",
        help="keep the PostgreSQL database afterwards (reused by the next run with equal params)",
    )
    parser.add_argument("--rebuild", action="store_true", help="regenerate even when cached")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also time the resolvers in-process per SQL statement, with plans of slow ones",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return BenchOptions(
        visitors=args.visitors,
        pageviews_per_visitor=args.pageviews_per_visitor,
        runs=args.runs,
        warmup=args.warmup,
        postgres=args.postgres,
        postgres_db=args.postgres_db,
        keep_postgres=args.keep_postgres,
        rebuild=args.rebuild,
        explain=args.explain,
        cache_dir=args.cache_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a read errored or a count was not exact."""
    console = Console() if sys.stdout.isatty() else Console(width=200)
    report = run_benchmark(parse_args(argv), console=console)
    broken = [r for r in report.reads if r.status == "error"]
    inexact = [c for c in report.exactness if not c.matches]
    return 1 if broken or inexact else 0


if __name__ == "__main__":
    sys.exit(main())

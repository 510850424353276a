"""The baselines measured in the same run: naive exact SQL on the same database, and the
exactness checks of the API against it."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.dataset import (
    SITE_ID,
    asyncpg_dsn,
    sqlite_timestamp_formatter,
)
from benchmarks.reads import Window
from benchmarks.report import ExactnessCheck

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

    def export_csv(self, sql: str, args: tuple[Any, ...], path: Path) -> int:
        """Write the rows of ``sql`` to a CSV file with a header (NULL as empty); the row count."""
        if self._sqlite is not None:
            cursor = self._sqlite.execute(sql, args)
            count = 0
            with path.open("w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow([column[0] for column in cursor.description])
                while batch := cursor.fetchmany(50_000):
                    writer.writerows(batch)
                    count += len(batch)
            return count
        numbered = sql
        for number in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${number}", 1)
        assert self._runner is not None
        status = self._runner.run(
            self._pg.copy_from_query(numbered, *args, output=str(path), format="csv", header=True)
        )
        return int(str(status).split()[-1])

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

"""The DuckDB peer: the same dataset loaded into an in-process DuckDB, and its naive queries.

The benchmark's database is exported table by table to CSV (stdlib ``sqlite3`` or asyncpg
``COPY``; DuckDB's SQLite and PostgreSQL scanners are extensions, not available offline) and
read with ``read_csv`` into an in-memory DuckDB, every instant as ``TIMESTAMPTZ`` in a UTC
session. Each read is then answered the naive columnar way, one plain SQL statement per number
the product's read returns, and timed in-process (no HTTP): the peer the issue compares with.

* revenue summary: new revenue, refunds and distinct payers in range; MRR's covering payments
  per billing interval (normalised in Python exactly as the product does); visitors in range
  (the union over pageviews, completions and payments, for the conversion rate). "payments
  only" is the same without the visitors;
* revenue per day: new revenue and refunds grouped by local day (``timezone(tz, paid_at)``);
* goals list: per goal distinct completers and completions in range, and visitors in range.

The answers are checked against the API's (net revenue, MRR, every series bucket).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.baselines import DirectDatabase
from benchmarks.dataset import SITE_ID
from benchmarks.reads import Window
from benchmarks.report import ExactnessCheck, percentile
from datasaas import billing

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "goal": (("id", "BIGINT"), ("name", "VARCHAR")),
    "pageview": (("visitor_id", "BIGINT"), ("occurred_at", "TIMESTAMPTZ")),
    "goal_completion": (
        ("goal_id", "BIGINT"),
        ("visitor_id", "BIGINT"),
        ("completed_at", "TIMESTAMPTZ"),
    ),
    "payment": (
        ("visitor_id", "BIGINT"),
        ("transaction_id", "VARCHAR"),
        ("payment_type", "VARCHAR"),
        ("amount_minor", "BIGINT"),
        ("reporting_amount_minor", "BIGINT"),
        ("original_transaction_id", "VARCHAR"),
        ("paid_at", "TIMESTAMPTZ"),
        ("billing_interval", "VARCHAR"),
        ("billing_interval_count", "BIGINT"),
        ("covers_until_at", "TIMESTAMPTZ"),
    ),
}
"""The columns the naive queries need, per table (one site only: ``ds_bench``)."""

VISITORS_SQL = (
    "SELECT count(*) FROM ("
    "SELECT visitor_id FROM pageview WHERE occurred_at BETWEEN $1 AND $2 UNION "
    "SELECT visitor_id FROM goal_completion WHERE completed_at BETWEEN $1 AND $2 UNION "
    "SELECT visitor_id FROM payment WHERE paid_at BETWEEN $1 AND $2)"
)
TOTALS_SQL = (
    "SELECT coalesce(sum(reporting_amount_minor) FILTER (payment_type <> 'refund'), 0), "
    "coalesce(sum(reporting_amount_minor) FILTER (payment_type = 'refund'), 0), "
    "count(DISTINCT visitor_id) FILTER (payment_type <> 'refund' AND amount_minor > 0) "
    "FROM payment WHERE paid_at BETWEEN $1 AND $2"
)
MRR_SQL = (
    "SELECT p.billing_interval, p.billing_interval_count, "
    "sum(greatest(p.reporting_amount_minor - coalesce(r.refunded, 0), 0)) FROM payment p "
    "LEFT JOIN (SELECT original_transaction_id, sum(reporting_amount_minor) AS refunded "
    "FROM payment WHERE payment_type = 'refund' AND paid_at <= $1 GROUP BY 1) r "
    "ON r.original_transaction_id = p.transaction_id "
    "WHERE p.payment_type = 'recurring' AND p.paid_at <= $1 AND p.covers_until_at > $1 "
    "GROUP BY 1, 2"
)
PER_DAY_SQL = (
    "SELECT CAST(date_trunc('day', timezone($3, paid_at)) AS DATE) AS day, "
    "coalesce(sum(reporting_amount_minor) FILTER (payment_type <> 'refund'), 0), "
    "coalesce(sum(reporting_amount_minor) FILTER (payment_type = 'refund'), 0) "
    "FROM payment WHERE paid_at BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1"
)
GOALS_SQL = (
    "SELECT g.name, count(DISTINCT c.visitor_id), count(*) FROM goal_completion c "
    "JOIN goal g ON g.id = c.goal_id WHERE c.completed_at BETWEEN $1 AND $2 GROUP BY g.name"
)

PEER_READS = {
    "revenue summary": "GET /api/v1/revenue",
    "revenue summary, payments only": "GET /api/v1/revenue",
    "revenue per day": "GET /api/v1/revenue/timeseries (day)",
    "goals list": "GET /api/v1/goals",
}
"""Each DuckDB peer read -> the product's read (benchmark name) it is compared with. "payments
only" leaves out the visitors in range (the union over 5M pageviews), which the product's
summary also answers (its conversion rate): the narrower peer the issue's 4.4 ms figure names."""


@dataclass(slots=True)
class PeerResult:
    """One DuckDB read, timed in-process: its samples and the answer it gave."""

    read: str
    window: str
    samples_ms: list[float] = field(default_factory=list)
    median_ms: float = 0.0
    p95_ms: float = 0.0
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Peer:
    """What the peer measured: load time, DuckDB version, per-read results."""

    version: str
    load_seconds: float
    rows: dict[str, int]
    results: list[PeerResult]


def _export(direct: DirectDatabase, table: str, path: Path) -> int:
    columns = ", ".join(name for name, _ in TABLES[table])
    where = "" if table == "goal" else " WHERE site_id = ?"
    sql = f"SELECT {columns} FROM {table}{where}"
    args: tuple[Any, ...] = () if table == "goal" else (SITE_ID,)
    return direct.export_csv(sql, args, path)


def load(direct: DirectDatabase) -> tuple[duckdb.DuckDBPyConnection, dict[str, int], float]:
    """An in-memory DuckDB holding the benchmark site's rows: (connection, rows, seconds)."""
    began = time.perf_counter()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="datasaas-duckdb-") as folder:
        for table, columns in TABLES.items():
            path = Path(folder) / f"{table}.csv"
            rows[table] = _export(direct, table, path)
            types = ", ".join(f"'{name}': '{kind}'" for name, kind in columns)
            connection.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header = true, "
                f"columns = {{{types}}}, nullstr = '')"
            )
    return connection, rows, time.perf_counter() - began


def _payments_summary(db: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    bounds = [window.start_at, window.end_at]
    new, refunds, payers = db.execute(TOTALS_SQL, bounds).fetchall()[0]
    groups = db.execute(MRR_SQL, [window.end_at]).fetchall()
    mrr = billing.normalised_mrr(
        (billing.BillingInterval(interval), int(count), int(net)) for interval, count, net in groups
    )
    return {
        "total_minor": int(new) - int(refunds),
        "mrr_minor": mrr,
        "paying_visitors": int(payers),
    }


def _summary(db: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    visitors = db.execute(VISITORS_SQL, [window.start_at, window.end_at]).fetchall()[0][0]
    return {**_payments_summary(db, window), "visitors": int(visitors)}


def _per_day(db: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    zone = window.timezone or "UTC"
    rows = db.execute(PER_DAY_SQL, [window.start_at, window.end_at, zone]).fetchall()
    return {"days": {day.isoformat(): (int(new), int(refunds)) for day, new, refunds in rows}}


def _goals(db: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    bounds = [window.start_at, window.end_at]
    goals = db.execute(GOALS_SQL, bounds).fetchall()
    visitors = db.execute(VISITORS_SQL, bounds).fetchall()[0][0]
    return {
        "goals": {str(name): (int(uniques), int(count)) for name, uniques, count in goals},
        "visitors": int(visitors),
    }


READS: dict[str, Callable[[duckdb.DuckDBPyConnection, Window], dict[str, Any]]] = {
    "revenue summary": _summary,
    "revenue summary, payments only": _payments_summary,
    "revenue per day": _per_day,
    "goals list": _goals,
}


def measure_peer(
    direct: DirectDatabase, windows: list[Window], runs: int, timed: set[tuple[str, str]]
) -> Peer:
    """Load the dataset into DuckDB and time, per window, the peer of every product read in
    ``timed`` ((read name, window label) pairs): one warm-up, then ``runs``."""
    db, rows, seconds = load(direct)
    results: list[PeerResult] = []
    try:
        for window in windows:
            for name, read in READS.items():
                if (PEER_READS[name], window.label) not in timed:
                    continue
                result = PeerResult(name, window.label, answer=read(db, window))
                for _ in range(runs):
                    began = time.perf_counter()
                    read(db, window)
                    result.samples_ms.append((time.perf_counter() - began) * 1000)
                result.median_ms = statistics.median(result.samples_ms)
                result.p95_ms = percentile(result.samples_ms, 0.95)
                results.append(result)
    finally:
        db.close()
    return Peer(duckdb.__version__, seconds, rows, results)


def check_peer(peer: Peer, bodies: dict[tuple[str, str], dict[str, Any]]) -> list[ExactnessCheck]:
    """The API's net revenue, MRR and every series bucket against the DuckDB answers."""
    checks: list[ExactnessCheck] = []
    for result in peer.results:
        body = bodies.get((PEER_READS[result.read], result.window))
        if body is None:
            continue
        if result.read == "revenue summary":
            for metric, key, api in (
                ("net revenue, minor (DuckDB)", "total_minor", body["results"]["total_revenue"]),
                ("MRR, minor (DuckDB)", "mrr_minor", body["results"]["mrr"]),
            ):
                ours, theirs = minor(api), int(result.answer[key])
                checks.append(ExactnessCheck(result.window, metric, ours, theirs, ours == theirs))
        elif result.read == "revenue per day":
            api_days = {
                row["period"]: (minor(row["new_revenue"]), minor(row["refund_revenue"]))
                for row in body["results"]
                if minor(row["new_revenue"]) or minor(row["refund_revenue"])
            }
            peer_days = {day: sums for day, sums in result.answer["days"].items() if any(sums)}
            checks.append(
                ExactnessCheck(
                    result.window,
                    "revenue per day, minor (DuckDB)",
                    sum(new - refunds for new, refunds in api_days.values()),
                    sum(new - refunds for new, refunds in peer_days.values()),
                    api_days == peer_days,
                    f"{len(peer_days)} days",
                )
            )
    return checks


def minor(value: Any) -> int:
    """An API money string in major units (two decimals, USD) as integer minor units."""
    whole, _, fraction = str(value).partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int((fraction + "00")[:2]))

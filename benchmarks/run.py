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
PostgreSQL) in the state right after the import (which builds the derived caches, as the
product's imports do), and the cached dataset is never modified: "first ms" is the first request
of each read on a freshly started server, medians are warm.

Last, the UTC goals read is timed right after each of ``--runs`` goal completions backdated into
the range (what a site receiving late events pays when finished days are cached), and checked
again.

The API's ``meta.visitors`` and per-goal counts are checked against naive exact SQL, and so are
the filtered reads (``is``, ``is_not``, ``contains``) and the revenue breakdowns by source and
by country (every row's visitors and net revenue), timed on the UTC window. Results go
to a Rich table and to ``.bench/results-<backend>.json``. ``--explain`` also times the resolvers
in-process, statement by statement, with query plans of the slow statements.

One module per job: ``dataset`` (generate and cache the data), ``reads`` (what is timed),
``baselines`` (naive SQL and the exactness checks), ``measure`` (timing over HTTP), ``report``
(the table and the JSON), ``explain`` (in-process profiles); this module runs them, serving the
app with the launcher the tests use (``datasaas.devserver``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy.engine import make_url

from benchmarks import explain
from benchmarks.baselines import (
    NOT_GENERATED,
    DirectDatabase,
    check_breakdown,
    check_exactness,
    check_filtered,
    naive_baseline,
)
from benchmarks.dataset import (
    SITE_ID,
    TABLE_COLUMNS,
    BuildResult,
    DatasetSpec,
    build_postgres,
    build_sqlite,
    clone_postgres,
    drop_postgres,
)
from benchmarks.duckdb_peer import PEER_READS, check_peer, measure_peer
from benchmarks.measure import measure, measure_backdated
from benchmarks.reads import BREAKDOWN_READS, FILTERED_READS, Read, reads_for, windows
from benchmarks.report import BUDGET_MS, BenchReport, PeerComparison, print_report
from datasaas.devserver import running_server
from datasaas.resolvers.sites import Scope, create_key
from datasaas.storage.engine import Database

REPO_ROOT = Path(__file__).resolve().parent.parent


DEFAULT_CACHE_DIR = REPO_ROOT / ".bench"

INPROCESS_READS = {
    "revenue summary": "revenue: revenue_summary",
    "revenue summary, payments only": "revenue: revenue_summary",
    "revenue per day": "revenue timeseries: revenue_timeseries(day)",
    "goals list": "goals: list_goals",
}
"""Each DuckDB peer read -> the in-process profile (``explain``) of the product's resolver."""


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


@contextmanager
def serve(database_url: str, *, timeout: float = 60.0) -> Iterator[str]:
    """Run the app in uvicorn on a free port (rate limits raised); yield its base URL."""
    env = {
        **os.environ,
        "DATASAAS_DATABASE_URL": database_url,
        "DATASAAS_RATE_LIMIT_PER_MINUTE": "1000000000",
        "DATASAAS_LOG_LEVEL": "warning",
    }
    with running_server(env, timeout=timeout, cwd=REPO_ROOT) as base:
        yield base


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
        unfilled = [
            table
            for table in sorted(set(direct.tables()) - set(TABLE_COLUMNS) - NOT_GENERATED)
            if not direct.rows(f'SELECT EXISTS (SELECT 1 FROM "{table}")')[0][0]
        ]
    finally:
        direct.close()
    if unfilled:
        console.print(
            f"[yellow]note:[/yellow] tables empty at start (neither generated nor built by the "
            f"import): "
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
        peer_bodies: dict[tuple[str, str], dict[str, Any]] = {}
        for read, result, response in zip(reads, results, responses[1:], strict=True):
            if read.name in PEER_READS.values() and result.status == "ok":
                peer_bodies[(read.name, read.window.label)] = response.json()
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
            console.print("Loading the same rows into DuckDB (the in-process peer)")
            timed = {(read.name, read.window.label) for read in reads}
            peer = measure_peer(direct, windows(spec), options.runs, timed)
            exactness += check_peer(peer, peer_bodies)
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

    # The resolvers in-process, like for like with DuckDB; with --explain also printed, with
    # the plans of slow statements.
    profiles = asyncio.run(
        explain.profile_reads(
            url,
            secret,
            windows(spec),
            runs=options.runs,
            slow_ms=10.0 if options.explain else math.inf,
            console=console if options.explain else Console(quiet=True),
        )
    )
    inprocess = {(p["read"], p["window"]): float(p["median_ms"]) for p in profiles}
    by_read = {(r.name, r.window): r for r in results}
    comparisons = []
    for peer_result in peer.results:
        product = by_read.get((PEER_READS[peer_result.read], peer_result.window))
        comparison = PeerComparison(
            peer_read=peer_result.read,
            window=peer_result.window,
            duckdb_median_ms=peer_result.median_ms,
            duckdb_p95_ms=peer_result.p95_ms,
            product_read=PEER_READS[peer_result.read],
            product_median_ms=product.median_ms if product else None,
            product_inprocess_ms=inprocess.get(
                (INPROCESS_READS[peer_result.read], peer_result.window)
            ),
        )
        comparisons.append(
            {
                **asdict(comparison),
                "ratio_http": comparison.ratio_http,
                "ratio_inprocess": comparison.ratio_inprocess,
            }
        )
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
        explain=profiles if options.explain else None,
        peer=asdict(peer),
        peer_comparisons=comparisons,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
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
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="where results-<backend>.json goes (default: the cache directory), so that runs "
        "sharing another checkout's cached datasets do not overwrite its results",
    )
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
        results_dir=args.results_dir,
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

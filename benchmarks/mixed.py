"""Reads under write load: each 30-day read's p95 while goals and events are being written.

``python -m benchmarks.mixed [--visitors N] [--runs 10] [--postgres URL]`` serves a pristine
copy of the read benchmark's dataset (built or reused exactly as ``benchmarks.run`` does), times
every UTC read of the read benchmark quietly, then again while a separate thread of this process
writes at ``--write-rate`` requests/s over 16 keep-alive connections (8 posting
``POST /api/v1/goals``, 8 posting ``POST /api/events`` with one pageview, the raw asyncio client
of ``benchmarks.writes``; ``--write-rate 0`` saturates), and prints both p50/p95 per read with
the 100 ms budget and the writes answered meanwhile. With
``--postgres`` the dataset database is dropped afterwards unless ``--keep-postgres``. The
writes are live traffic (timestamped now, after the dataset's range), so what is measured is the
contention a read meets (CPU, SQLite's writer lock, connection pool), not cache invalidation,
which ``benchmarks.run`` measures with its backdated writes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.dataset import SITE_DOMAIN, SITE_ID, DatasetSpec, drop_postgres
from benchmarks.measure import measure
from benchmarks.reads import reads_for
from benchmarks.report import ReadResult
from benchmarks.run import BenchOptions, _build, issue_key, pristine_copy
from benchmarks.writes import BROWSER, REPO_ROOT, Scenario, _exchange, _request_bytes, scenarios
from datasaas.devserver import running_server
from datasaas.resolvers.sites import Scope

BUDGET_MS = 100.0
WRITERS_PER_KIND = 8
DEFAULT_RATE = 400.0
"""Writes/s during the timed reads: a busy site's steady traffic, well under the ceiling (a
saturating load, ``--write-rate 0``, makes every read queue behind the writes of one worker)."""


WRITTEN = ("POST /api/v1/goals", "POST /api/events (1)")
"""The write benchmark's scenarios run meanwhile (against the dataset's site)."""


def _write_scenarios(run: str) -> list[Scenario]:
    every = scenarios(run, site_id=SITE_ID, domain=SITE_DOMAIN)
    return [scenario for scenario in every if scenario.name in WRITTEN]


@dataclass(slots=True)
class WriteLoad:
    """Writes kept running at ``rate`` requests/s (half goals, half events) in a process of
    their own (a thread would share this process's GIL with the timed reads) until stopped;
    ``rate`` 0 saturates (every connection sends as fast as it is answered)."""

    base: str
    key: str
    rate: float
    answered: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    _stop: Any = None
    _results: Any = None
    _process: Any = None

    def start(self) -> None:
        """Begin writing."""
        context = multiprocessing.get_context("spawn")
        self._stop, self._results, ready = context.Event(), context.Queue(), context.Event()
        self._process = context.Process(
            target=_write_until_stopped,
            args=(self.base, self.key, self.rate, self._stop, self._results, ready),
            daemon=True,
        )
        self._process.start()
        if not ready.wait(timeout=60):
            raise RuntimeError("the writers did not start")
        time.sleep(1.0)  # let the write rate settle before the first timed read

    def finish(self) -> None:
        """Stop writing; collect what the writers were answered."""
        self._stop.set()
        self.answered, self.seconds = self._results.get(timeout=120)
        self._process.join()


def _write_until_stopped(
    base: str, key: str, rate: float, stop: Any, results: Any, ready: Any
) -> None:
    load = _Writers(base, key, rate, stop, ready)
    asyncio.run(load.run())
    results.put((load.answered, load.seconds))


@dataclass(slots=True)
class _Writers:
    base: str
    key: str
    rate: float
    stop: Any
    ready: Any
    answered: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    async def run(self) -> None:
        """Write until ``stop`` is set."""
        began = time.perf_counter()
        run = uuid.uuid4().hex[:8]
        parts = urlsplit(self.base)

        async def connection(scenario: Scenario, number: int, interval: float) -> None:
            statuses = self.answered.setdefault(scenario.name, {})
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            self.ready.set()
            due = time.perf_counter() + interval * number / WRITERS_PER_KIND
            n = number
            try:
                while not self.stop.is_set():
                    request = _request_bytes(parts.netloc, self.key, *scenario.build(n))
                    status = str(await _exchange(reader, writer, request))
                    statuses[status] = statuses.get(status, 0) + 1
                    n += WRITERS_PER_KIND
                    if interval:
                        due += interval
                        await asyncio.sleep(max(0.0, due - time.perf_counter()))
            finally:
                writer.close()

        per_connection = self.rate / 2 / WRITERS_PER_KIND
        interval = 1 / per_connection if per_connection else 0.0
        await asyncio.gather(
            *(
                connection(scenario, number, interval)
                for scenario in _write_scenarios(run)
                for number in range(WRITERS_PER_KIND)
            )
        )
        self.seconds = time.perf_counter() - began


def _table(quiet: Sequence[ReadResult], loaded: Sequence[ReadResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("read", "quiet p50 / p95 ms", "under writes p50 / p95 ms", "budget"):
        table.add_column(column)
    for calm, busy in zip(quiet, loaded, strict=True):
        within = busy.p95_ms is not None and busy.p95_ms <= BUDGET_MS
        table.add_row(
            calm.name,
            f"{calm.median_ms or 0:.1f} / {calm.p95_ms or 0:.1f}",
            f"{busy.median_ms or 0:.1f} / {busy.p95_ms or 0:.1f}",
            f"{'ok' if within else 'OVER'} ({BUDGET_MS:.0f})",
        )
    return table


def run_mixed(options: BenchOptions, console: Console, *, rate: float) -> dict[str, Any]:
    """Quiet reads, then the same reads under write load, on one server; return the report."""
    spec = DatasetSpec(
        visitors=options.visitors, pageviews_per_visitor=options.pageviews_per_visitor
    )
    build = _build(options, spec, console)
    reads = [read for read in reads_for(SITE_ID, spec) if read.window.label == "UTC"]
    with pristine_copy(build, options) as url:
        read_key = asyncio.run(issue_key(url))
        write_key = asyncio.run(issue_key(url, Scope.READ_WRITE))
        env = {
            **os.environ,
            "DATASAAS_DATABASE_URL": url,
            "DATASAAS_RATE_LIMIT_PER_MINUTE": "1000000000",
            "DATASAAS_EVENTS_RATE_LIMIT_PER_MINUTE": "1000000000",
            "DATASAAS_LOG_LEVEL": "warning",
        }
        with running_server(env, timeout=60, cwd=REPO_ROOT) as base:
            headers = {"Authorization": f"Bearer {read_key}", "User-Agent": BROWSER}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                quiet, _ = measure(client, reads, runs=options.runs, warmup=options.warmup)
                load = WriteLoad(base, write_key, rate)
                load.start()
                try:
                    loaded, _ = measure(client, reads, runs=options.runs, warmup=1)
                finally:
                    load.finish()
    backend = "PostgreSQL" if options.postgres else "SQLite"
    load_name = f"{rate:,.0f} writes/s offered" if rate else "saturating writes"
    console.print(_table(quiet, loaded, f"Reads under {load_name}, {backend}, 1 worker"))
    writes = {
        name: {**statuses, "per_s": round(sum(statuses.values()) / load.seconds, 1)}
        for name, statuses in load.answered.items()
    }
    console.print(
        f"Writes answered meanwhile ({load.seconds:.1f} s, one request at a time per "
        f"connection): {writes}"
    )
    return {
        "backend": backend,
        "quiet": [(r.name, r.status, r.median_ms, r.p95_ms) for r in quiet],
        "under_writes": [(r.name, r.status, r.median_ms, r.p95_ms) for r in loaded],
        "writes": writes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mixed benchmark; exit 1 when a read errored."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mixed", description=__doc__)
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--postgres", metavar="URL", help="an admin URL, to bench PostgreSQL")
    parser.add_argument("--postgres-db", default="datasaas_bench")
    parser.add_argument("--keep-postgres", action="store_true", help="keep the dataset database")
    parser.add_argument(
        "--write-rate",
        type=float,
        default=DEFAULT_RATE,
        help="writes/s meanwhile, half goals, half events (0 saturates)",
    )
    args = parser.parse_args(argv)
    options = BenchOptions(
        visitors=args.visitors,
        runs=args.runs,
        postgres=args.postgres,
        postgres_db=args.postgres_db,
        keep_postgres=args.keep_postgres,
    )
    console = Console(width=160)
    try:
        report = run_mixed(options, console, rate=args.write_rate)
    finally:
        if options.postgres and not options.keep_postgres:
            asyncio.run(drop_postgres(options.postgres, options.postgres_db))
    failed = [row for row in report["quiet"] + report["under_writes"] if row[1] != "ok"]
    for name, status, *_ in failed:
        console.print(f"read failed: {name} ({status})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

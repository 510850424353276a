"""The benchmark report: results, exactness checks, the Rich table and the JSON file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

BUDGET_MS = 100.0


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (``fraction`` 0.95 for p95)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


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


@dataclass(frozen=True, slots=True)
class PeerComparison:
    """A product read against its DuckDB peer (in-process naive SQL) in the same run."""

    peer_read: str
    window: str
    duckdb_median_ms: float
    duckdb_p95_ms: float
    product_read: str
    product_median_ms: float | None
    """Over HTTP (includes the HTTP floor)."""
    product_inprocess_ms: float | None
    """The resolver alone, in-process (no HTTP, no auth): like for like with DuckDB."""

    @property
    def ratio_http(self) -> float | None:
        """Product over HTTP / DuckDB in-process."""
        if self.product_median_ms is None:
            return None
        return self.product_median_ms / self.duckdb_median_ms

    @property
    def ratio_inprocess(self) -> float | None:
        """Product in-process / DuckDB in-process (below 1: the product is faster)."""
        if self.product_inprocess_ms is None:
            return None
        return self.product_inprocess_ms / self.duckdb_median_ms


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
    peer: dict[str, Any] | None = None
    """The DuckDB peer: version, load seconds, rows, every sample."""
    peer_comparisons: list[dict[str, Any]] = field(default_factory=list)


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
        "request of that read, on a pristine copy of the database as the import left it.\n"
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
    if report.peer is not None:
        _print_peer(report, console)
    for check in report.exactness:
        verdict = "[green]match[/green]" if check.matches else "[red]MISMATCH[/red]"
        detail = f" ({check.detail})" if check.detail else ""
        console.print(
            f"exactness {check.window:<28} {check.metric:<17} API {check.api:>10,}  "
            f"naive SQL {check.naive:>10,}  {verdict}{detail}"
        )


def _print_peer(report: BenchReport, console: Console) -> None:
    peer = report.peer
    assert peer is not None
    table = Table(
        title=f"DuckDB {peer['version']} peer: the same rows in-process "
        f"(loaded in {peer['load_seconds']:.1f} s), naive SQL, {report.runs} runs each",
        caption="product / DuckDB below 1.00x: the product answers faster. in-process: the "
        "product's resolver without HTTP or auth, like for like with DuckDB.",
    )
    for name, justify in (
        ("DuckDB read", "left"),
        ("range", "left"),
        ("DuckDB median ms", "right"),
        ("DuckDB p95 ms", "right"),
        ("product in-process ms", "right"),
        ("in-process / DuckDB", "right"),
        ("product HTTP ms", "right"),
        ("HTTP / DuckDB", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in report.peer_comparisons:
        table.add_row(
            row["peer_read"],
            row["window"],
            _ms(row["duckdb_median_ms"]),
            _ms(row["duckdb_p95_ms"]),
            _ms(row["product_inprocess_ms"]),
            _ratio(row["ratio_inprocess"]),
            _ms(row["product_median_ms"]),
            _ratio(row["ratio_http"]),
        )
    console.print(table)

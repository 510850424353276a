"""Smoke test of the read-path benchmark harness on a tiny SQLite dataset (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from benchmarks.dataset import DatasetSpec, generate
from benchmarks.measure import BACKDATED_READ
from benchmarks.reads import reads_for
from benchmarks.run import BenchOptions, run_benchmark


def test_generator_is_deterministic_and_exact_in_size() -> None:
    spec = DatasetSpec(visitors=200, pageviews_per_visitor=5)
    first, second = generate(spec), generate(spec)
    assert first.counts() == second.counts()
    assert first.visitors == second.visitors
    assert first.pageview_keys == second.pageview_keys
    assert first.counts()["pageview"] == 1_000
    assert first.counts()["visitor"] == 200


def test_harness_times_every_read_and_counts_match_naive_sql(tmp_path: Path) -> None:
    options = BenchOptions(visitors=200, runs=2, warmup=1, naive_runs=2, cache_dir=tmp_path)
    report = run_benchmark(options, console=Console(file=None, width=200, quiet=True))

    expected = {(read.name, read.window.label) for read in reads_for("ds_bench", DatasetSpec())}
    expected.add((BACKDATED_READ, "UTC"))
    assert {(result.name, result.window) for result in report.reads} == expected
    for result in report.reads:
        if result.status == "n/a":  # GraphQL may not be served yet; everything else must be
            assert result.name.startswith("POST /graphql"), result
            continue
        assert result.status == "ok", result
        assert len(result.samples_ms) == 2
        assert result.median_ms is not None
        assert result.ratio_naive is not None
    checked = {check.window for check in report.exactness}
    assert checked == {
        "UTC",
        "America/New_York",
        "UTC, unaligned edges",
        "UTC, after backdated writes",
    }
    assert all(check.matches for check in report.exactness), report.exactness
    assert any(check.api > 0 for check in report.exactness if check.metric == "visitors")

    peer_checks = [check for check in report.exactness if "(DuckDB)" in check.metric]
    assert {check.window for check in peer_checks} == {"UTC", "America/New_York"}
    assert any(check.naive != 0 for check in peer_checks), peer_checks
    # Every DuckDB peer read, per window, compared with the product's read over HTTP and
    # in-process.
    assert len(report.peer_comparisons) == 4 * 2 + 1  # the unaligned range: goals only
    for row in report.peer_comparisons:
        assert row["ratio_http"] is not None, row
        assert row["ratio_inprocess"] is not None, row

    saved = json.loads((tmp_path / "results-sqlite.json").read_text())
    assert saved["backend"] == "sqlite"
    assert len(saved["reads"]) == len(expected)
    assert saved["peer"]["rows"]["pageview"] == 1_000

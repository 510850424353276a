"""Timing reads over HTTP: warm medians and p95, the cold first request, and reads right after
backdated writes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import timedelta

import httpx

from benchmarks.dataset import (
    SITE_ID,
)
from benchmarks.reads import Read, Window
from benchmarks.report import ReadResult, percentile


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

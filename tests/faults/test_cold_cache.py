"""64 concurrent reads that all need a cache rebuild: no pool deadlock, no 500, exact counts.

Before the fix, a rebuild opened a second pool connection while holding the request's first:
16 concurrent cold reads on one worker stalled 30-90 s and some answered 500 (pool timeout).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from datasaas.resolvers.goals import store_completion
from datasaas.storage.engine import Database
from datasaas.storage.models import GoalCompletion
from tests.factories import bearer, make_key, make_pageview, make_site
from tests.faults.conftest import Server
from tests.storage.test_activity import naive_visitors

CONCURRENT = 64
QUERY = """query($start: String, $end: String) {
  revenue(siteId: "ds_test", start: $start, end: $end) { visitors }
}"""


async def _seed(database: Database, now: datetime) -> None:
    """Three days of pageviews and completions, all in finished (cacheable) hours."""
    await make_site(database)
    rng = random.Random(11)
    for n in range(240):
        at = now - timedelta(hours=2, minutes=rng.randrange(0, 3 * 24 * 60))
        await make_pageview(database, visitor_id=f"v{n % 150}", at=at)
        if n % 4 == 0:
            async with database.write() as session:
                await store_completion(
                    session,
                    site_id="ds_test",
                    name=("signup", "purchase")[n % 8 == 0],
                    uid=f"v{n % 150}",
                    url=None,
                    metadata=None,
                    at=at + timedelta(minutes=3),
                )


async def _expected(database: Database, start: datetime, end: datetime) -> dict[str, object]:
    async with database.read() as session:
        rows = (
            await session.execute(
                select(
                    col(GoalCompletion.goal_id),
                    func.count(),
                    func.count(func.distinct(col(GoalCompletion.visitor_id))),
                )
                .where(
                    col(GoalCompletion.completed_at) >= start,
                    col(GoalCompletion.completed_at) <= end,
                )
                .group_by(col(GoalCompletion.goal_id))
            )
        ).all()
    return {
        "visitors": await naive_visitors(database, start, end),
        "goals": sorted((count, unique) for _, count, unique in rows),
    }


async def _burst(
    base: str, secret: str, start: datetime, end: datetime
) -> tuple[list[float], list[dict[str, Any]]]:
    """Half REST goal reads, half GraphQL visitor reads, all at once; every answer checked."""
    params = {"site_id": "ds_test", "start": start.isoformat(), "end": end.isoformat()}
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one(n: int) -> tuple[float, httpx.Response]:
            began = time.perf_counter()
            if n % 2:
                variables = {"start": params["start"], "end": params["end"]}
                response = await client.post(
                    "/graphql",
                    json={"query": QUERY, "variables": variables},
                    headers=bearer(secret),
                )
            else:
                response = await client.get("/api/v1/goals", params=params, headers=bearer(secret))
            return time.perf_counter() - began, response

        answers = await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
    statuses = [response.status_code for _, response in answers]
    assert statuses == [200] * CONCURRENT, statuses
    return [seconds for seconds, _ in answers], [response.json() for _, response in answers]


def _check(results: list[dict[str, Any]], expected: dict[str, object]) -> None:
    for body in results:
        if "data" in body:
            assert body["data"] == {"revenue": {"visitors": expected["visitors"]}}, body
        else:
            goals = body["results"]
            assert isinstance(goals, list)
            found = sorted((g["completion_count"], g["unique_visitors"]) for g in goals)
            assert found == expected["goals"], body


def _p99(durations: list[float]) -> float:
    return statistics.quantiles(durations, n=100)[98]


async def _cold_then_warm(
    base: str, secret: str, start: datetime, end: datetime, expected: dict[str, object]
) -> None:
    """A burst that needs rebuilds, then the same burst warm: both exact; the cold p99 stays
    within twice the warm p99 plus 2 s, measured on this machine in this run (the deadlock made
    it 30-180 s; comparing with the warm burst keeps a loaded machine's noise out of it)."""
    cold, results = await _burst(base, secret, start, end)
    _check(results, expected)
    warm, results = await _burst(base, secret, start, end)
    _check(results, expected)
    assert _p99(cold) <= 2 * _p99(warm) + 2.0, (sorted(cold)[-3:], sorted(warm)[-3:])


async def test_concurrent_cold_reads_and_reads_after_a_backdated_write(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    now = datetime.now(UTC)
    await _seed(database, now)
    key = await make_key(database)
    workers = 1 if database_url.startswith("sqlite") else 2
    server = Server(database_url, workers=workers)
    serve.append(server)
    server.start()
    start = (now - timedelta(days=3, minutes=7)).replace(microsecond=0)
    end = (now - timedelta(minutes=1)).replace(microsecond=0)

    # A new site: nothing cached yet; every read needs the same rebuild.
    await _cold_then_warm(
        server.base, key.secret, start, end, await _expected(database, start, end)
    )

    # A backdated write three hours ago: its hour (and day) are stale for every reader.
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        response = await client.post(
            "/api/v1/goals",
            params={"site_id": "ds_test"},
            json={
                "name": "signup",
                "visitor_id": "late_visitor",
                "completed_at": (now - timedelta(hours=3)).isoformat(),
            },
            headers=bearer(key),
        )
    assert response.status_code == 200, response.text
    expected = await _expected(database, start, end)
    await _cold_then_warm(server.base, key.secret, start, end, expected)

"""In-process attribution of read time: each resolver timed statement by statement, with plans.

The same resolvers the HTTP routes call run here on the project's ``Database``; SQLAlchemy cursor
events time every statement and ``gc.callbacks`` time the cyclic garbage collector's pauses, so a
read's time splits into SQL, garbage collection and the rest of Python. Statements slower than a
threshold are shown with their plan: ``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (ANALYZE,
BUFFERS)`` on PostgreSQL.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks.dataset import SITE_ID
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.sites import authenticate, require_site
from datasaas.storage.engine import Database
from datasaas.timerange import Period

if TYPE_CHECKING:
    from benchmarks.reads import Window

ReadCall = Callable[[AsyncSession], Awaitable[object]]


@dataclass(slots=True)
class StatementTiming:
    """One SQL statement of a read: median time over the runs, and its plan when slow."""

    sql: str
    median_ms: float
    plan: list[str] | None = None


@dataclass(slots=True)
class ReadProfile:
    """A read's resolver time in-process (no HTTP), split into its statements."""

    read: str
    window: str
    median_ms: float
    gc_ms: float = 0.0
    full_collections: int = 0
    statements: list[StatementTiming] = field(default_factory=list)

    @property
    def sql_ms(self) -> float:
        """Time inside SQL statements (sum of their medians)."""
        return sum(statement.median_ms for statement in self.statements)


@dataclass(slots=True)
class _Recorder:
    active: bool = False
    items: list[tuple[str, Any, float]] = field(default_factory=list)
    gc_ms: float = 0.0
    full_collections: int = 0
    _gc_started: float = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: add each collection's pause while recording."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.active:
            self.gc_ms += (time.perf_counter() - self._gc_started) * 1000
            self.full_collections += info.get("generation") == 2


def _install(database: Database, recorder: _Recorder) -> None:
    engine = database.engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _sql: str, _params: Any, _ctx: Any, _many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        elapsed = (time.perf_counter() - conn.info["bench_started"].pop()) * 1000
        if recorder.active:
            recorder.items.append((sql, params, elapsed))


def _calls(secret: str, window: Window) -> list[tuple[str, ReadCall]]:
    period = Period(window.start, window.end, window.timezone)

    async def auth(session: AsyncSession) -> object:
        await authenticate(session, f"Bearer {secret}")
        return await require_site(session, SITE_ID)

    async def goals(session: AsyncSession) -> object:
        return await goal_resolvers.list_goals(session, site_id=SITE_ID, period=period, limit=100)

    async def completions(session: AsyncSession) -> object:
        return await goal_resolvers.list_completions(
            session, site_id=SITE_ID, name="signup", period=period, limit=100
        )

    async def revenue(session: AsyncSession) -> object:
        site = await require_site(session, SITE_ID)
        return await revenue_resolvers.revenue_summary(session, site=site, period=period)

    async def timeseries(session: AsyncSession) -> object:
        site = await require_site(session, SITE_ID)
        return await revenue_resolvers.revenue_timeseries(
            session, site=site, period=period, granularity="day"
        )

    return [
        ("auth + site lookup (every request)", auth),
        ("goals: list_goals", goals),
        ("completions: list_completions(signup)", completions),
        ("revenue: revenue_summary", revenue),
        ("revenue timeseries: revenue_timeseries(day)", timeseries),
    ]


async def _plan(database: Database, sql: str, params: Any) -> list[str]:
    """The plan of one captured statement, run with the same parameters."""
    async with database.read() as session:
        connection = await session.connection()
        if database.is_sqlite:
            result = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            depth: dict[int, int] = {0: -1}
            lines = []
            for row in result.all():
                values: Sequence[Any] = row
                node, parent, detail = int(values[0]), int(values[1]), str(values[-1])
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        analyzed = "EXPLAIN (ANALYZE, BUFFERS) " + sql
        return [str(row[0]) for row in (await connection.exec_driver_sql(analyzed, params)).all()]


def _compact(sql: str) -> str:
    return " ".join(sql.split())


async def profile_reads(
    database_url: str,
    secret: str,
    windows: Sequence[Window],
    *,
    runs: int = 5,
    slow_ms: float = 10.0,
    console: Console,
) -> list[dict[str, Any]]:
    """Time each read's resolver and statements in-process; plans for statements ≥ ``slow_ms``."""
    database = Database(database_url)
    recorder = _Recorder()
    _install(database, recorder)
    profiles: list[ReadProfile] = []
    gc.callbacks.append(recorder.on_gc)
    try:
        for window in windows:
            for name, call in _calls(secret, window):
                async with database.read() as session:
                    await call(session)  # warm-up
                totals: list[float] = []
                pauses: list[float] = []
                full_collections = 0
                per_run: list[list[tuple[str, Any, float]]] = []
                for _ in range(runs):
                    recorder.items = []
                    recorder.gc_ms = 0.0
                    recorder.full_collections = 0
                    recorder.active = True
                    began = time.perf_counter()
                    async with database.read() as session:
                        await call(session)
                    totals.append((time.perf_counter() - began) * 1000)
                    recorder.active = False
                    per_run.append(recorder.items)
                    pauses.append(recorder.gc_ms)
                    full_collections += recorder.full_collections
                profile = ReadProfile(
                    name,
                    window.label,
                    statistics.median(totals),
                    statistics.median(pauses),
                    full_collections,
                )
                for position, (sql, params, _) in enumerate(per_run[-1]):
                    timings = [run[position][2] for run in per_run if len(run) > position]
                    timing = StatementTiming(_compact(sql), statistics.median(timings))
                    if timing.median_ms >= slow_ms:
                        timing.plan = await _plan(database, sql, params)
                    profile.statements.append(timing)
                profiles.append(profile)
                _print(profile, console)
    finally:
        gc.callbacks.remove(recorder.on_gc)
        await database.dispose()
    return [{**asdict(profile), "sql_ms": profile.sql_ms} for profile in profiles]


def _print(profile: ReadProfile, console: Console) -> None:
    other = max(0.0, profile.median_ms - profile.sql_ms - profile.gc_ms)
    console.print(
        f"[bold]{escape(profile.read)}[/bold] — {profile.window}: resolver "
        f"{profile.median_ms:,.1f} ms in-process (medians) = SQL {profile.sql_ms:,.1f} ms "
        f"+ GC pauses {profile.gc_ms:,.1f} ms ({profile.full_collections} full collections in "
        f"the runs) + other Python {other:,.1f} ms"
    )
    for statement in profile.statements:
        text = statement.sql if len(statement.sql) <= 240 else statement.sql[:237] + "..."
        console.print(f"  {statement.median_ms:9,.1f} ms  {escape(text)}", soft_wrap=True)
        for line in statement.plan or []:
            console.print(f"               │ {escape(line)}", soft_wrap=True)

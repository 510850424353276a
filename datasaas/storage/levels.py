"""Completions by any set of visitors, exact, without reading the range's completions.

Per finished period (UTC day or hour, as ``periods.plan_range`` splits a range) and goal, the
completers' bitmap *levels*: level k holds the visitors with more than k completions of the goal
in the period. The completions of the visitors in ``keys`` are then
``sum(|level_k & keys|)`` over the levels: exact, and a few bitmap intersections per period
instead of a row per completion. Raw windows (edges, the last hour or two) are read as rows.

Levels are kept in memory per ``Database`` and versioned by ``hour_version`` exactly like the
activity bitmaps (a day's version is the sum of its hours'): versions are read before the rows a
period is built from, so a backdated completion committed after that read leaves the period
stale-marked and it is rebuilt by the next read.

So that a fresh worker does not read a range's completions on its first filtered read, the
warm-up also keeps them in ``completion_level``: after an import it builds and stores every
finished day (``build_periods``, with the versions read first, as above), and at start it loads
the stored ones into memory (``load``). A loaded period is used under the same rule as one built
here: only while its version is the period's current one. Reads themselves never read or write
the table (their statements stay as they were).
"""

from __future__ import annotations

import json
import struct
import weakref
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.periods import HOUR, instant_of, plan_range, runs, seconds_of
from datasaas.storage.activity import CACHE_KEY, ActivityCache
from datasaas.storage.engine import background_context
from datasaas.storage.models import CompletionLevel, GoalCompletion, HourVersion
from datasaas.storage.sql import dialect_insert

Levels = dict[int, list[BitMap]]
"""goal_id -> [visitors with at least 1 completion, at least 2, ...]"""

_MAX_PERIODS: Final = 20_000
"""Cached (site, span, period) entries per database; the oldest go first."""

_BY_DATABASE: weakref.WeakKeyDictionary[Any, dict[tuple[str, int, int], tuple[int, Levels]]] = (
    weakref.WeakKeyDictionary()
)


_HEADER: Final = struct.Struct("<I")

Memory = dict[tuple[str, int, int], tuple[int, Levels]]
"""(site, span, period) -> (version, levels): one database's levels in memory."""


def _memory(session: AsyncSession) -> Memory:
    owner = session.info.get(CACHE_KEY)
    return _BY_DATABASE.setdefault(owner, {}) if owner is not None else {}


def _remember(memory: Memory, key: tuple[str, int, int], version: int, levels: Levels) -> None:
    if key not in memory and len(memory) >= _MAX_PERIODS:
        memory.pop(next(iter(memory)))
    memory[key] = (version, levels)


def encode_levels(levels: Levels) -> bytes:
    """A period's levels as bytes: a JSON header (goal, sizes of its levels), then bitmaps."""
    blobs = {goal: [level.serialize() for level in stack] for goal, stack in levels.items()}
    header = json.dumps([[goal, [len(blob) for blob in parts]] for goal, parts in blobs.items()])
    encoded = header.encode()
    return b"".join(
        [_HEADER.pack(len(encoded)), encoded, *(blob for parts in blobs.values() for blob in parts)]
    )


def decode_levels(blob: bytes) -> Levels:
    """The inverse of ``encode_levels``."""
    (length,) = _HEADER.unpack_from(blob)
    offset = _HEADER.size + length
    levels: Levels = {}
    for goal, sizes in json.loads(blob[_HEADER.size : offset]):
        goal_levels = []
        for size in sizes:
            goal_levels.append(BitMap.deserialize(blob[offset : offset + size]))
            offset += size
        levels[int(goal)] = goal_levels
    return levels


def _levels(counts: dict[int, dict[int, int]]) -> Levels:
    levels: Levels = {}
    for goal, per_visitor in counts.items():
        by_level: list[list[int]] = []
        for visitor, count in per_visitor.items():
            while len(by_level) < count:
                by_level.append([])
            for level in range(count):
                by_level[level].append(visitor)
        levels[goal] = [BitMap(visitors) for visitors in by_level]
    return levels


async def _versions(
    session: AsyncSession, site_id: str, periods: dict[int, list[int]]
) -> dict[tuple[int, int], int]:
    wanted = {(span, period) for span, listed in periods.items() for period in listed}
    if not wanted:
        return {}
    hours = [
        hour
        for span, period in wanted
        for hour in range(period * (span // HOUR), (period + 1) * (span // HOUR))
    ]
    versions = dict.fromkeys(wanted, 0)
    rows = await session.execute(
        select(col(HourVersion.hour), col(HourVersion.version)).where(
            col(HourVersion.site_id) == site_id,
            col(HourVersion.hour) >= min(hours),
            col(HourVersion.hour) <= max(hours),
        )
    )
    spans = sorted(periods)
    for hour, version in rows.all():
        for span in spans:
            key = (span, hour * HOUR // span)
            if key in versions:
                versions[key] += version
    return versions


async def _build(
    session: AsyncSession, site_id: str, span: int, periods: Sequence[int]
) -> dict[int, Levels]:
    """Levels of the given periods of one span, from the raw completions."""
    at = col(GoalCompletion.completed_at)
    counts: dict[int, dict[int, dict[int, int]]] = {
        period: defaultdict(lambda: defaultdict(int)) for period in periods
    }
    for first, stop in runs(periods):
        rows = await session.execute(
            select(at, col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
                col(GoalCompletion.site_id) == site_id,
                at >= instant_of(first * span),
                at < instant_of(stop * span),
            )
        )
        for completed_at, goal, visitor in rows.all():
            instant = completed_at if completed_at.tzinfo else completed_at.replace(tzinfo=UTC)
            period = seconds_of(instant) // span
            if period in counts:
                counts[period][goal][visitor] += 1
    return {period: _levels(per_goal) for period, per_goal in counts.items()}


async def count_completions_by(
    session: AsyncSession,
    *,
    site_id: str,
    goal_ids: Sequence[int],
    start: datetime,
    end: datetime,
    keys: Sequence[BitMap],
    now: datetime | None = None,
) -> list[dict[int, int]]:
    """For each bitmap of ``keys``: completions per goal in [start, end] by those visitors."""
    plan = plan_range(start, end, now or datetime.now(UTC))
    wanted = set(goal_ids)
    totals: list[dict[int, int]] = [defaultdict(int) for _ in keys]
    cache = _memory(session)
    # Versions first, then data: see the module docstring.
    versions = await _versions(session, site_id, plan.periods)
    for span, periods in plan.periods.items():
        chosen: dict[int, Levels] = {}
        for period in periods:
            version, levels = cache.get((site_id, span, period), (-1, {}))
            if version == versions[(span, period)]:
                chosen[period] = levels
        stale = [period for period in periods if period not in chosen]
        if stale:
            built = await _build(session, site_id, span, stale)
            for period, levels in built.items():
                _remember(cache, (site_id, span, period), versions[(span, period)], levels)
            chosen.update(built)
        for levels in chosen.values():
            for goal, goal_levels in levels.items():
                if goal not in wanted:
                    continue
                for total, bitmap in zip(totals, keys, strict=True):
                    total[goal] += sum(
                        level.intersection_cardinality(bitmap) for level in goal_levels
                    )
    if plan.raw:
        at = col(GoalCompletion.completed_at)
        rows = await session.execute(
            select(col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id)).where(
                col(GoalCompletion.site_id) == site_id,
                col(GoalCompletion.goal_id).in_(wanted),
                or_(*(and_(at >= a, at < b) for a, b in plan.raw)),
            )
        )
        for goal, visitor in rows.all():
            for total, bitmap in zip(totals, keys, strict=True):
                if visitor in bitmap:
                    total[goal] += 1
    return [{goal: count for goal, count in total.items() if count} for total in totals]


async def build_periods(
    session: AsyncSession, *, site_id: str, span: int, periods: Sequence[int]
) -> None:
    """Build the levels of ``periods`` from the completions, keep them in memory and store them
    in the background (the warm-up; a stored row is replaced only by a newer version)."""
    if not periods:
        return
    versions = await _versions(session, site_id, {span: list(periods)})  # versions first
    built = await _build(session, site_id, span, periods)
    memory = _memory(session)
    rows = []
    for period, levels in built.items():
        version = versions[(span, period)]
        _remember(memory, (site_id, span, period), version, levels)
        rows.append(
            {
                "site_id": site_id,
                "span": span,
                "period": period,
                "version": version,
                "levels": encode_levels(levels),
            }
        )
    cache: ActivityCache | None = session.info.get(CACHE_KEY)
    if cache is None:
        return

    async def store(writer: AsyncSession) -> None:
        insert = dialect_insert(writer)
        for first in range(0, len(rows), 500):
            statement = insert(CompletionLevel).values(rows[first : first + 500])
            await writer.execute(
                statement.on_conflict_do_update(
                    index_elements=["site_id", "span", "period"],
                    set_={
                        "version": statement.excluded.version,
                        "levels": statement.excluded.levels,
                    },
                    where=col(CompletionLevel.version) < statement.excluded.version,
                )
            )

    cache.store_later_with(
        store, what=f"completion levels for {site_id}", context=background_context()
    )


async def load(session: AsyncSession, *, site_id: str) -> int:
    """Bring a site's stored levels into memory (the warm-up at start; the newest periods
    first, at most half the memory's bound); the number of periods loaded."""
    rows = await session.execute(
        select(
            col(CompletionLevel.span),
            col(CompletionLevel.period),
            col(CompletionLevel.version),
            col(CompletionLevel.levels),
        )
        .where(col(CompletionLevel.site_id) == site_id)
        .order_by((col(CompletionLevel.period) * col(CompletionLevel.span)).desc())
        .limit(_MAX_PERIODS // 2)
    )
    memory = _memory(session)
    loaded = 0
    for span, period, version, blob in rows.all():
        key = (site_id, int(span), int(period))
        if memory.get(key, (-1, {}))[0] < version:
            _remember(memory, key, int(version), decode_levels(bytes(blob)))
            loaded += 1
    return loaded

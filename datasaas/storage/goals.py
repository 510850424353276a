"""Queries on goals and goal completions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy import and_, func, insert, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage import ids
from datasaas.storage.activity import goal_activity
from datasaas.storage.filters import VisitorFilter
from datasaas.storage.levels import count_completions_by
from datasaas.storage.models import Goal, GoalCompletion, Visitor
from datasaas.storage.sql import (
    core_rows,
    core_table,
    insert_many_ignoring_conflicts,
)

# Bounded statement sizes: SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535.
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class GoalStats:
    """Completions of one goal in a range."""

    goal_id: int
    name: str
    unique_visitors: int
    completion_count: int


@dataclass(frozen=True, slots=True)
class CompletionRow:
    """A completion joined with its visitor's first-touch attributes."""

    id: int
    goal_id: int
    visitor_uid: str
    completed_at: datetime
    url: str | None
    metadata: dict[str, Any] | None
    source: str | None
    country: str | None
    city: str | None
    browser: str | None
    os: str | None
    device_type: str | None


async def goal_id(
    session: AsyncSession, *, site_id: str, name: str, create_at: datetime | None = None
) -> int | None:
    """Return a goal's id; with ``create_at``, create the goal when the site never recorded it."""
    if create_at is not None:
        created = await goal_ids(session, site_id=site_id, created_at={name: create_at})
        return created[name]
    query = select(col(Goal.id)).where(col(Goal.site_id) == site_id, col(Goal.name) == name)
    found = await session.scalar(query)
    return int(found) if found is not None else None


async def goal_ids(
    session: AsyncSession, *, site_id: str, created_at: Mapping[str, datetime]
) -> dict[str, int]:
    """Ids of a site's goals by name, creating the unknown ones (``created_at``: name -> the
    instant a new goal is created at). No statement when all are cached; otherwise one lookup,
    and for new goals one insert that returns their ids."""
    found: dict[str, int] = {}
    names = list(created_at)
    for name in names:
        known = ids.lookup(session, ("goal", site_id, name))
        if known is not None:
            found[name] = known
    missing = [name for name in dict.fromkeys(names) if name not in found]
    if not missing:
        return found
    learnt = await _goal_ids(session, site_id, missing)
    new = [name for name in missing if name not in learnt]
    if new:
        rows = [{"site_id": site_id, "name": name, "created_at": created_at[name]} for name in new]
        created = await insert_many_ignoring_conflicts(
            session, Goal, rows, returning=(col(Goal.name), col(Goal.id))
        )
        learnt |= {name: int(key) for name, key in created}
        raced = [name for name in new if name not in learnt]  # created meanwhile elsewhere
        if raced:
            learnt |= await _goal_ids(session, site_id, raced)
    ids.remember(session, {("goal", site_id, name): key for name, key in learnt.items()})
    return found | learnt


async def _goal_ids(session: AsyncSession, site_id: str, names: Sequence[str]) -> dict[str, int]:
    rows = await session.execute(
        select(col(Goal.name), col(Goal.id)).where(
            col(Goal.site_id) == site_id, col(Goal.name).in_(names)
        )
    )
    return {name: key for name, key in rows.all() if key is not None}


async def insert_completions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert completions (each row: site_id, goal_id, visitor_id, completed_at, url,
    properties) with one Core statement per chunk, no unit of work."""
    table = core_table(GoalCompletion)
    for start in range(0, len(rows), _CHUNK):
        chunk = core_rows(GoalCompletion, rows[start : start + _CHUNK])
        await session.execute(insert(table), chunk)


def _in_range(start: datetime, end: datetime) -> Any:
    return and_(col(GoalCompletion.completed_at) >= start, col(GoalCompletion.completed_at) <= end)


async def goal_stats(
    session: AsyncSession,
    *,
    site_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    offset: int,
    name: str | None = None,
    visitors: VisitorFilter | None = None,
    matching: BitMap | None = None,
) -> list[GoalStats]:
    """Every goal of the site (or one by name) with range counts, busiest first, then by name.

    With ``visitors`` (and their keys, ``matching``) only completions of those visitors count:
    uniques are the cached bitmaps intersected with the keys, completions a grouped count.
    """
    query = select(col(Goal.id), col(Goal.name)).where(col(Goal.site_id) == site_id)
    if name is not None:
        query = query.where(col(Goal.name) == name)
    goals: list[tuple[int, str]] = []
    for goal_id, goal_name in (await session.execute(query)).all():
        assert goal_id is not None  # a primary key read back from the database
        goals.append((goal_id, goal_name))
    if not goals:
        return []
    activity = await goal_activity(
        session,
        site_id=site_id,
        start=start,
        end=end,
        goal_ids={goal_id for goal_id, _ in goals} if name is not None else None,
    )
    completions = activity.completions
    uniques = {goal: len(bitmap) for goal, bitmap in activity.visitors.items()}
    if visitors is not None and matching is not None:
        uniques = {
            goal: bitmap.intersection_cardinality(matching)
            for goal, bitmap in activity.visitors.items()
        }
        completions = await count_completions_of(
            session,
            site_id=site_id,
            goal_ids=[goal for goal, _ in goals],
            start=start,
            end=end,
            keys=matching,
        )
    stats = [
        GoalStats(
            goal_id=goal_id,
            name=goal_name,
            unique_visitors=uniques.get(goal_id, 0),
            completion_count=completions.get(goal_id, 0),
        )
        for goal_id, goal_name in goals
    ]
    stats.sort(key=lambda s: (-s.completion_count, s.name))
    return stats[offset : offset + limit]


async def list_completions(
    session: AsyncSession,
    *,
    goal_ids: Sequence[int],
    start: datetime,
    end: datetime,
    limit: int,
    offset: int = 0,
    before: tuple[datetime, int] | None = None,
    visitors: VisitorFilter | None = None,
) -> list[CompletionRow]:
    """Up to ``limit`` completions per goal, newest first (then newest insert first), by goal.

    ``before`` is a keyset cursor: only rows strictly older than (completed_at, id). Several goals
    are read in one statement, a ``UNION ALL`` of one index range scan per goal.
    """
    if not goal_ids:
        return []
    order = (col(GoalCompletion.completed_at).desc(), col(GoalCompletion.id).desc())
    conditions = [_in_range(start, end)]
    if visitors is not None:
        conditions.append(visitors.applies_to(GoalCompletion.visitor_id))
    if before is not None:
        at, row_id = before
        conditions.append(
            or_(
                col(GoalCompletion.completed_at) < at,
                and_(col(GoalCompletion.completed_at) == at, col(GoalCompletion.id) < row_id),
            )
        )
    per_goal = [
        select(col(GoalCompletion.id))
        .where(col(GoalCompletion.goal_id) == goal, *conditions)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery()
        for goal in dict.fromkeys(goal_ids)
    ]
    ids: Any = (
        select(per_goal[0].c.id)
        if len(per_goal) == 1
        else union_all(*(select(part.c.id) for part in per_goal))
    ).subquery()
    query = (
        select(
            col(GoalCompletion.id),
            col(GoalCompletion.goal_id),
            col(Visitor.uid),
            col(GoalCompletion.completed_at),
            col(GoalCompletion.url),
            col(GoalCompletion.properties),
            col(Visitor.source),
            col(Visitor.country),
            col(Visitor.city),
            col(Visitor.browser),
            col(Visitor.os),
            col(Visitor.device_type),
        )
        .join(ids, ids.c.id == col(GoalCompletion.id))
        .join(Visitor, col(Visitor.id) == col(GoalCompletion.visitor_id))
        .order_by(col(GoalCompletion.goal_id), *order)
    )
    rows = (await session.execute(query)).all()
    return [CompletionRow(*row) for row in rows]


async def count_completions_of(
    session: AsyncSession,
    *,
    site_id: str,
    goal_ids: Sequence[int],
    start: datetime,
    end: datetime,
    keys: BitMap,
) -> dict[int, int]:
    """Completions per goal in the range by the visitors in ``keys``: the cached completion
    levels of the range's finished periods intersected with ``keys``, plus its raw edges."""
    (counts,) = await count_completions_by(
        session, site_id=site_id, goal_ids=goal_ids, start=start, end=end, keys=[keys]
    )
    return counts


async def count_completions(
    session: AsyncSession,
    *,
    goal_ids: Sequence[int],
    start: datetime,
    end: datetime,
    visitors: VisitorFilter | None = None,
) -> dict[int, int]:
    """Completions per goal in the range (goals with none are absent)."""
    query = (
        select(col(GoalCompletion.goal_id), func.count())
        .where(col(GoalCompletion.goal_id).in_(goal_ids), _in_range(start, end))
        .group_by(col(GoalCompletion.goal_id))
    )
    if visitors is not None:
        query = query.where(visitors.applies_to(GoalCompletion.visitor_id))
    return {int(goal): int(count) for goal, count in (await session.execute(query)).all()}


async def completions_per_value(
    session: AsyncSession,
    *,
    site_id: str,
    goal_ids: Sequence[int],
    start: datetime,
    end: datetime,
    groups: dict[str | None, BitMap],
) -> dict[int, dict[str | None, tuple[int, int]]]:
    """Per goal and group of visitor keys (a dimension's values): (distinct completers,
    completions) in [start, end]: the range's completer bitmaps and completion levels
    intersected with each group, without reading the range's completions."""
    if not goal_ids or not groups:
        return {}
    activity = await goal_activity(
        session, site_id=site_id, start=start, end=end, goal_ids=set(goal_ids)
    )
    values = list(groups)
    counts = await count_completions_by(
        session,
        site_id=site_id,
        goal_ids=goal_ids,
        start=start,
        end=end,
        keys=[groups[value] for value in values],
    )
    found: dict[int, dict[str | None, tuple[int, int]]] = {}
    for goal in goal_ids:
        completers = activity.visitors.get(goal)
        if completers is None:
            continue
        per_value = found.setdefault(goal, {})
        for value, per_goal in zip(values, counts, strict=True):
            uniques = completers.intersection_cardinality(groups[value])
            if uniques:
                per_value[value] = (uniques, per_goal.get(goal, 0))
    return found

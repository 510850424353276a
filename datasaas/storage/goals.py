"""Queries on goals and goal completions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.activity import goal_activity
from datasaas.storage.filters import VisitorFilter
from datasaas.storage.levels import count_completions_by
from datasaas.storage.models import Goal, GoalCompletion, Visitor
from datasaas.storage.sql import insert_ignore


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
    query = select(col(Goal.id)).where(col(Goal.site_id) == site_id, col(Goal.name) == name)
    found = await session.scalar(query)
    if found is not None or create_at is None:
        return found
    await session.execute(
        insert_ignore(session, Goal, {"site_id": site_id, "name": name, "created_at": create_at})
    )
    created = await session.scalar(query)
    assert created is not None
    return int(created)


async def insert_completion(
    session: AsyncSession,
    *,
    site_id: str,
    goal_id: int,
    visitor_id: int,
    completed_at: datetime,
    url: str | None,
    metadata: dict[str, Any] | None,
) -> None:
    """Insert one completion."""
    session.add(
        GoalCompletion(
            site_id=site_id,
            goal_id=goal_id,
            visitor_id=visitor_id,
            completed_at=completed_at,
            url=url,
            properties=metadata,
        )
    )
    await session.flush()


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


async def completions_by_value(
    session: AsyncSession,
    *,
    goal_ids: Sequence[int],
    dimension: Any,
    start: datetime,
    end: datetime,
    visitors: VisitorFilter | None = None,
) -> dict[int, dict[str | None, tuple[int, int]]]:
    """Per goal and value of a visitor column: (distinct completers, completions), one query."""
    if not goal_ids:
        return {}
    query = (
        select(
            col(GoalCompletion.goal_id),
            dimension,
            func.count(func.distinct(col(GoalCompletion.visitor_id))),
            func.count(),
        )
        .join(Visitor, col(Visitor.id) == col(GoalCompletion.visitor_id))
        .where(col(GoalCompletion.goal_id).in_(goal_ids), _in_range(start, end))
        .group_by(col(GoalCompletion.goal_id), dimension)
    )
    if visitors is not None:
        query = query.where(visitors.where)
    found: dict[int, dict[str | None, tuple[int, int]]] = {}
    for goal, value, uniques, count in (await session.execute(query)).all():
        found.setdefault(int(goal), {})[value] = (int(uniques), int(count))
    return found


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

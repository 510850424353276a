"""Goals: conversion statistics, completions (offset pages and keyset connections), writes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pyroaring import BitMap
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import InvalidInput
from datasaas.filters import Filter
from datasaas.metrics import conversion_rate
from datasaas.resolvers import live, validation
from datasaas.storage import activity
from datasaas.storage import filters as filter_store
from datasaas.storage import goals as goal_store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.filters import VisitorFilter
from datasaas.storage.goals import CompletionRow
from datasaas.timerange import Period, TimeRange


@dataclass(frozen=True, slots=True)
class GoalRow:
    """One goal's numbers for a range."""

    goal_id: int | None
    name: str
    unique_visitors: int
    completion_count: int
    conversion_rate: float


@dataclass(frozen=True, slots=True)
class GoalList:
    """The goals of a site for a range."""

    range: TimeRange
    visitors: int
    goals: list[GoalRow]


@dataclass(frozen=True, slots=True)
class CompletionOffsetPage:
    """An offset page of one goal's completions."""

    range: TimeRange
    goal_name: str
    limit: int
    offset: int
    items: list[CompletionRow]


@dataclass(frozen=True, slots=True)
class CompletionKeysetPage:
    """A keyset page of one goal's completions (Relay-style)."""

    items: list[CompletionRow]
    has_next_page: bool
    total_count: int

    @property
    def end_cursor(self) -> str | None:
        """The cursor of the last item, or None for an empty page."""
        return encode_cursor(self.items[-1]) if self.items else None


@dataclass(frozen=True, slots=True)
class GoalIn:
    """A server-side goal completion as received (validated by ``record_goal``)."""

    name: object
    visitor_id: object
    url: object = None
    metadata: object = None
    completed_at: object = None


GOAL_FIELDS: Final = tuple(field.name for field in fields(GoalIn))
"""The fields of a goal completion, as every door names them (snake_case)."""


@dataclass(frozen=True, slots=True)
class GoalResult:
    """The outcome of ``record_goal``."""

    created: bool
    goal_name: str


def keyset_cursor(at: datetime, row_id: int) -> str:
    """Return an opaque cursor for a (instant, id) keyset position."""
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_cursor(row: CompletionRow) -> str:
    """Return an opaque cursor for a completion: its (completed_at, id) keyset position."""
    return keyset_cursor(row.completed_at, row.id)


def decode_cursor(cursor: str, *, field: str = "after") -> tuple[datetime, int]:
    """Decode a cursor from ``encode_cursor`` or raise InvalidInput."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, _, row_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return datetime.fromisoformat(at).astimezone(UTC), int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput.for_field(field, "is not a cursor returned by this API") from None


@dataclass(frozen=True, slots=True)
class Audience:
    """The visitors a read counts: the filter (None = everyone), its keys, how many in range."""

    filter: VisitorFilter | None
    keys: BitMap | None
    active: BitMap

    @property
    def visitors(self) -> int:
        """Visitors active in the range that match the filters."""
        return len(self.active)


async def audience(
    session: AsyncSession, *, site_id: str, rng: TimeRange, filters: Sequence[Filter]
) -> Audience:
    """The range's active visitors narrowed by ``filters`` (a bitmap intersection)."""
    matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
    start, end = await active_window(session, site_id=site_id, rng=rng)
    active = await activity.active_visitors(session, site_id=site_id, start=start, end=end)
    if matching is None:
        return Audience(None, None, active)
    keys = await matching.keys(session)
    return Audience(matching, keys, active & keys)


def _row(stats: goal_store.GoalStats, visitors: int) -> GoalRow:
    return GoalRow(
        goal_id=stats.goal_id,
        name=stats.name,
        unique_visitors=stats.unique_visitors,
        completion_count=stats.completion_count,
        conversion_rate=conversion_rate(stats.unique_visitors, visitors),
    )


UNCLIPPED_SPAN = timedelta(days=3 * 366)


async def active_window(
    session: AsyncSession, *, site_id: str, rng: TimeRange
) -> tuple[datetime, datetime]:
    """The part of ``rng`` that can hold activity: the same answers, bounded work.

    Activity is counted per hour, so a read from year 2 to 9998 would plan 87 million hours;
    clipped to the site's first and last recorded instants it plans only hours with data.
    Ranges of a few years cost little either way and skip the extra query.
    """
    if rng.end - rng.start <= UNCLIPPED_SPAN:
        return rng.start, rng.end
    span = await visitor_store.activity_span(session, site_id=site_id)
    if span is None or rng.end < span[0]:
        return rng.end, rng.end
    if rng.start > span[1]:
        return rng.start, rng.start
    return max(rng.start, span[0]), min(rng.end, span[1])


async def list_goals(
    session: AsyncSession,
    *,
    site_id: str,
    period: Period,
    filters: Sequence[Filter] = (),
    limit: object = None,
    offset: object = None,
) -> GoalList:
    """Every goal the site has recorded with its range statistics, busiest first."""
    rng = period.resolve()
    page_size, skip = validation.limit(limit), validation.offset(offset)
    who = await audience(session, site_id=site_id, rng=rng, filters=filters)
    start, end = await active_window(session, site_id=site_id, rng=rng)
    stats = await goal_store.goal_stats(
        session,
        site_id=site_id,
        start=start,
        end=end,
        limit=page_size,
        offset=skip,
        visitors=who.filter,
        matching=who.keys,
    )
    visitors = who.visitors
    return GoalList(range=rng, visitors=visitors, goals=[_row(s, visitors) for s in stats])


async def get_goal(
    session: AsyncSession,
    *,
    site_id: str,
    name: object,
    period: Period,
    filters: Sequence[Filter] = (),
) -> tuple[TimeRange, GoalRow]:
    """The resolved range and one goal's statistics in it; a name never recorded gives zeros."""
    goal_name = validation.normalize_goal_name(name)
    rng = period.resolve()
    matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
    keys = await matching.keys(session) if matching is not None else None
    start, end = await active_window(session, site_id=site_id, rng=rng)
    stats = await goal_store.goal_stats(
        session,
        site_id=site_id,
        start=start,
        end=end,
        limit=1,
        offset=0,
        name=goal_name,
        visitors=matching,
        matching=keys,
    )
    if not stats:
        return rng, GoalRow(None, goal_name, 0, 0, 0.0)
    active = await activity.active_visitors(session, site_id=site_id, start=start, end=end)
    visitors = len(active & keys) if keys is not None else len(active)
    return rng, _row(stats[0], visitors)


async def list_completions(
    session: AsyncSession,
    *,
    site_id: str,
    name: object,
    period: Period,
    filters: Sequence[Filter] = (),
    limit: object = None,
    offset: object = None,
) -> CompletionOffsetPage:
    """A page of one goal's completions, newest first, with first-touch visitor attributes."""
    goal_name = validation.normalize_goal_name(name)
    rng = period.resolve()
    page_size, skip = validation.limit(limit), validation.offset(offset)
    goal = await goal_store.goal_id(session, site_id=site_id, name=goal_name)
    items: list[CompletionRow] = []
    if goal is not None:
        matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
        items = await goal_store.list_completions(
            session,
            goal_ids=[goal],
            start=rng.start,
            end=rng.end,
            limit=page_size,
            offset=skip,
            visitors=matching,
        )
    return CompletionOffsetPage(
        range=rng, goal_name=goal_name, limit=page_size, offset=skip, items=items
    )


async def completion_connections(
    session: AsyncSession,
    *,
    site_id: str,
    goal_ids: Sequence[int],
    rng: TimeRange,
    first: int,
    after: str | None,
    filters: Sequence[Filter] = (),
) -> dict[int, CompletionKeysetPage]:
    """Keyset pages for several goals at once (two statements, whatever the number of goals)."""
    if not 1 <= first <= validation.MAX_LIMIT:
        raise InvalidInput.for_field("first", f"must be from 1 to {validation.MAX_LIMIT}")
    before = decode_cursor(after) if after else None
    matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
    rows = await goal_store.list_completions(
        session,
        goal_ids=goal_ids,
        start=rng.start,
        end=rng.end,
        limit=first + 1,
        before=before,
        visitors=matching,
    )
    if matching is None:
        totals = await goal_store.count_completions(
            session, goal_ids=goal_ids, start=rng.start, end=rng.end
        )
    else:  # completion levels intersected with the matching keys: no scan of the range
        start, end = await active_window(session, site_id=site_id, rng=rng)
        totals = await goal_store.count_completions_of(
            session,
            site_id=site_id,
            goal_ids=goal_ids,
            start=start,
            end=end,
            keys=await matching.keys(session),
        )
    grouped: dict[int, list[CompletionRow]] = {goal: [] for goal in goal_ids}
    for row in rows:
        grouped[row.goal_id].append(row)
    return {
        goal: CompletionKeysetPage(
            items=items[:first], has_next_page=len(items) > first, total_count=totals.get(goal, 0)
        )
        for goal, items in grouped.items()
    }


@dataclass(frozen=True, slots=True)
class NewCompletion:
    """A validated completion, ready to store."""

    site_id: str
    name: str
    uid: str
    url: str | None
    metadata: dict[str, Any] | None
    at: datetime


def validate_goal(site_id: str, goal: GoalIn, *, now: datetime | None = None) -> NewCompletion:
    """Validate a goal completion as received (InvalidInput names the first bad field)."""
    now = now or datetime.now(UTC)
    return NewCompletion(
        site_id=site_id,
        name=validation.normalize_goal_name(goal.name),
        uid=validation.visitor_id(goal.visitor_id),
        url=validation.http_url(goal.url),
        metadata=validation.metadata(goal.metadata),
        at=validation.instant(goal.completed_at, field="completed_at", now=now),
    )


async def record_goal(
    session: AsyncSession, *, site_id: str, goal: GoalIn, now: datetime | None = None
) -> GoalResult:
    """Validate and store one goal completion (creating the goal and visitor on first sight)."""
    completion = validate_goal(site_id, goal, now=now)
    await store_completions(session, [completion])
    return GoalResult(created=True, goal_name=completion.name)


async def record_goals(
    session: AsyncSession, completions: Sequence[NewCompletion]
) -> list[GoalResult]:
    """Store validated completions together (a group commit's set-based batch)."""
    await store_completions(session, completions)
    return [GoalResult(created=True, goal_name=completion.name) for completion in completions]


async def store_completion(
    session: AsyncSession,
    *,
    site_id: str,
    name: str,
    uid: str,
    url: str | None,
    metadata: dict[str, Any] | None,
    at: datetime,
) -> None:
    """Write one already validated completion (see ``store_completions``)."""
    await store_completions(session, [NewCompletion(site_id, name, uid, url, metadata, at)])


async def store_completions(session: AsyncSession, completions: Sequence[NewCompletion]) -> None:
    """Write already validated completions set-based, whatever their number: per site the goal
    ids and visitor keys (no statement for cached ones), then one insert of the completions,
    one of their activity slots, and their outbox events (tracker batches and group commits)."""
    by_site: dict[str, list[NewCompletion]] = {}
    for completion in completions:
        by_site.setdefault(completion.site_id, []).append(completion)
    rows: list[dict[str, Any]] = []
    activity: list[tuple[str, int, datetime]] = []
    events: list[live.CompletionEvent] = []
    for site_id, site_completions in by_site.items():
        goals_at: dict[str, datetime] = {}
        visitors_at: dict[str, datetime] = {}
        for done in site_completions:  # a new goal or visitor is first seen at its earliest
            goals_at[done.name] = min(done.at, goals_at.get(done.name, done.at))
            visitors_at[done.uid] = min(done.at, visitors_at.get(done.uid, done.at))
        goal_ids = await goal_store.goal_ids(session, site_id=site_id, created_at=goals_at)
        keys = await visitor_store.visitor_ids(
            session, site_id=site_id, uids=list(visitors_at), seen_at=visitors_at
        )
        for done in site_completions:
            visitor = keys[done.uid]
            rows.append(
                {
                    "site_id": site_id,
                    "goal_id": goal_ids[done.name],
                    "visitor_id": visitor,
                    "completed_at": done.at,
                    "url": done.url,
                    "properties": done.metadata,
                }
            )
            activity.append((site_id, visitor, done.at))
            events.append(
                live.CompletionEvent(
                    site_id, done.name, visitor, done.uid, done.url, done.metadata, done.at
                )
            )
    await goal_store.insert_completions(session, rows)
    await visitor_store.mark_many_active(session, activity)
    await live.completions_created(session, events)

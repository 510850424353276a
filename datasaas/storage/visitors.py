"""Queries on visitors: identity (string id to integer key), first touch, activity slots."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import String, bindparam, delete, false, func, literal, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.periods import SLOT_SECONDS
from datasaas.storage import ids
from datasaas.storage.activity import touch_hour, touch_hours
from datasaas.storage.models import (
    GoalCompletion,
    Pageview,
    Payment,
    Visitor,
    VisitorSlot,
)
from datasaas.storage.sql import (
    core_table,
    dialect_name,
    ignore_conflicts,
    insert_many,
    insert_many_ignoring_conflicts,
    slot_of,
)

# Bounded statement sizes: SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535.
_CHUNK: Final = 500


async def visitor_key(session: AsyncSession, *, site_id: str, uid: str, seen_at: datetime) -> int:
    """Return the integer key of a visitor, creating the visitor on first sight (cached)."""
    keys = await visitor_ids(session, site_id=site_id, uids=[uid], seen_at={uid: seen_at})
    return keys[uid]


@dataclass(frozen=True, slots=True)
class VisitorKey:
    """A visitor's integer key, and whether their first pageview is still to come."""

    key: int
    awaits_first_touch: bool


async def visitor_keys(
    session: AsyncSession,
    *,
    site_id: str,
    uids: Sequence[str],
    seen_at: datetime | Mapping[str, datetime],
    created_with: Callable[[str], Mapping[str, Any]] | None = None,
) -> dict[str, VisitorKey]:
    """Return the keys of many visitors, creating the unknown ones (first seen at ``seen_at``,
    one instant for all or one per visitor): a lookup of the known ones, an insert of the
    others that returns their keys (and a lookup of any a concurrent writer created first).

    ``created_with(uid)`` gives more columns for a visitor this call creates (a first pageview's
    first touch, ``first_pageview_at`` included), so that a new visitor is written once instead
    of inserted and then updated; a visitor that exists already (or that a concurrent writer
    created first) is left as it is and still ``awaits_first_touch`` if it did."""
    keys: dict[str, VisitorKey] = {}
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start : start + _CHUNK]
        keys |= await _known_keys(session, site_id, chunk)
        missing = [uid for uid in chunk if uid not in keys]
        if missing:
            rows = [
                {
                    **(created_with(uid) if created_with is not None else {}),
                    "site_id": site_id,
                    "uid": uid,
                    "first_seen_at": seen_at if isinstance(seen_at, datetime) else seen_at[uid],
                }
                for uid in missing
            ]
            created = await insert_many_ignoring_conflicts(
                session, Visitor, rows, returning=_KEY_COLUMNS
            )
            keys |= _keys_of(created)
            raced = [uid for uid in missing if uid not in keys]  # created meanwhile elsewhere
            if raced:
                keys |= await _known_keys(session, site_id, raced)
    ids.remember(session, {("visitor", site_id, uid): found.key for uid, found in keys.items()})
    return keys


async def visitor_ids(
    session: AsyncSession, *, site_id: str, uids: Sequence[str], seen_at: Mapping[str, datetime]
) -> dict[str, int]:
    """The integer keys of many visitors, creating the unknown ones; cached keys cost nothing."""
    found: dict[str, int] = {}
    for uid in uids:
        known = ids.lookup(session, ("visitor", site_id, uid))
        if known is not None:
            found[uid] = known
    missing = [uid for uid in dict.fromkeys(uids) if uid not in found]
    if missing:
        keys = await visitor_keys(session, site_id=site_id, uids=missing, seen_at=seen_at)
        found |= {uid: visitor.key for uid, visitor in keys.items()}
    return found


_KEY_COLUMNS: Final = (col(Visitor.uid), col(Visitor.id), col(Visitor.first_pageview_at))


def _keys_of(rows: Iterable[Sequence[Any]]) -> dict[str, VisitorKey]:
    return {uid: VisitorKey(int(key), first is None) for uid, key, first in rows}


async def _known_keys(
    session: AsyncSession, site_id: str, uids: Sequence[str]
) -> dict[str, VisitorKey]:
    return _keys_of(await find_by_uid(session, site_id=site_id, uids=uids))


async def find_by_uid(
    session: AsyncSession, *, site_id: str, uids: Sequence[str]
) -> list[tuple[str, int, datetime | None]]:
    """(uid, key, first pageview instant) of the existing visitors among ``uids``."""
    if dialect_name(session) == "postgresql":
        # One probe of the (site_id, uid) index per uid, as a LATERAL join over the uids as a
        # table, whatever the statistics say: with none yet (a young database) or stale ones,
        # ``uid IN (...)`` / ``= ANY(...)`` and a plain join were planned as a scan of every
        # visitor of the site (150 ms per 500 uids at 23k visitors).
        wanted = (
            func.unnest(bindparam(None, list(uids), type_=postgresql.ARRAY(String)))
            .table_valued("uid")
            .render_derived(name="wanted")
        )
        probe = (
            select(col(Visitor.id), col(Visitor.first_pageview_at))
            .where(col(Visitor.site_id) == site_id, col(Visitor.uid) == wanted.c.uid)
            .limit(1)  # (site_id, uid) is unique; the LIMIT keeps the join from being flattened
            .lateral("found")
        )
        query = select(wanted.c.uid, probe.c.id, probe.c.first_pageview_at).select_from(
            wanted.join(probe, true())
        )
    else:
        # The uids as one JSON array parameter rather than ``IN (?, ?, …)``: the same plan (a
        # probe of the (site_id, uid) index per uid), but one statement SQLAlchemy compiles
        # once instead of again for every number of uids (a third of its cost at 100 uids).
        wanted = func.json_each(bindparam(None, json.dumps(list(uids)))).table_valued("value")
        query = select(col(Visitor.uid), col(Visitor.id), col(Visitor.first_pageview_at)).where(
            col(Visitor.site_id) == site_id, col(Visitor.uid).in_(select(wanted.c.value))
        )
    rows = (await session.execute(query)).all()
    return [(uid, int(key), first) for uid, key, first in rows if key is not None]


async def set_first_touches(
    session: AsyncSession,
    *,
    at: datetime | Mapping[int, datetime],
    touches: Mapping[int, Mapping[str, Any]],
) -> None:
    """Record first-touch attributes (key -> attributes) of every visitor who has no first
    pageview yet, first seen by a pageview at ``at`` (one instant for all or one per key), in
    one executemany; visitors who have one are left as they are."""
    if not touches:
        return
    columns = sorted({name for attributes in touches.values() for name in attributes})
    statement = (
        update(Visitor)
        .where(col(Visitor.id) == bindparam("b_key"), col(Visitor.first_pageview_at).is_(None))
        .values(
            first_pageview_at=bindparam("b_at"),
            **{name: bindparam(f"b_{name}") for name in columns},
        )
    )
    params = [
        {
            "b_key": key,
            "b_at": at if isinstance(at, datetime) else at[key],
            **{f"b_{name}": attributes.get(name) for name in columns},
        }
        for key, attributes in touches.items()
    ]
    await (await session.connection()).execute(statement, params)


def keep_slots(session: AsyncSession) -> Callable[[Any], Any]:
    """The ``ON CONFLICT`` of activity slot inserts: rows that exist are kept.

    On PostgreSQL an existing row is also locked (``DO UPDATE ... WHERE false`` updates nothing
    but locks), so a concurrent ``unmark_active`` either sees this transaction's event once it
    commits, or deletes the row first and this insert then re-creates it.
    """
    return _keep_and_lock_slots if dialect_name(session) == "postgresql" else ignore_conflicts


def _keep_and_lock_slots(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["site_id", "slot", "visitor_id"],
        set_={"visitor_id": statement.excluded.visitor_id},
        where=false(),
    )


async def mark_active(
    session: AsyncSession, *, site_id: str, visitor_id: int, at: datetime
) -> None:
    """Record that a visitor was active in the 15-minute slot containing ``at``."""
    await mark_many_active(session, [(site_id, visitor_id, at)])


async def mark_many_active(
    session: AsyncSession, activity: Sequence[tuple[str, int, datetime]]
) -> None:
    """Record (site, visitor key, instant) activity: the slots in one insert, and one
    hour-version bump per finished hour they reach back into."""
    await touch_hours(session, [(site_id, at) for site_id, _, at in activity])
    ordered = sorted({(site_id, slot_of(at), visitor) for site_id, visitor, at in activity})
    if ordered:  # in key order, so that concurrent writers lock rows in one order
        rows = [{"site_id": site, "slot": slot, "visitor_id": key} for site, slot, key in ordered]
        await insert_many(session, core_table(VisitorSlot), rows, on_conflict=keep_slots(session))


async def get_visitor_by_key(session: AsyncSession, visitor_id: int) -> str:
    """Return the client id of a visitor by its integer key."""
    uid = await session.scalar(select(col(Visitor.uid)).where(col(Visitor.id) == visitor_id))
    assert uid is not None
    return str(uid)


async def unmark_active(
    session: AsyncSession, *, site_id: str, visitor_id: int, at: datetime
) -> bool:
    """After an event at ``at`` was deleted: drop the visitor's slot row if nothing else of
    theirs remains in that slot, and mark the hour's cached bitmaps stale. True if dropped."""
    await touch_hour(session, site_id=site_id, at=at)
    slot = slot_of(at)
    this_slot = (
        col(VisitorSlot.site_id) == site_id,
        col(VisitorSlot.slot) == slot,
        col(VisitorSlot.visitor_id) == visitor_id,
    )
    # Lock the row before looking for other activity: see ``keep_slots``.
    locked = await session.scalar(select(literal(1)).where(*this_slot).with_for_update())
    if locked is None:
        return False
    start = datetime.fromtimestamp(slot * SLOT_SECONDS, UTC)
    end = datetime.fromtimestamp((slot + 1) * SLOT_SECONDS, UTC)
    for site, visitor, column in (
        (col(Pageview.site_id), col(Pageview.visitor_id), col(Pageview.occurred_at)),
        (
            col(GoalCompletion.site_id),
            col(GoalCompletion.visitor_id),
            col(GoalCompletion.completed_at),
        ),
        (col(Payment.site_id), col(Payment.visitor_id), col(Payment.paid_at)),
    ):
        remaining = await session.scalar(
            select(literal(1))
            .where(site == site_id, visitor == visitor_id, column >= start, column < end)
            .limit(1)
        )
        if remaining is not None:
            return False
    await session.execute(delete(VisitorSlot).where(*this_slot))
    return True


async def activity_span(session: AsyncSession, *, site_id: str) -> tuple[datetime, datetime] | None:
    """The first and last instants of any pageview, completion or payment of the site."""
    bounds = []
    for table, at in (
        (Pageview, col(Pageview.occurred_at)),
        (GoalCompletion, col(GoalCompletion.completed_at)),
        (Payment, col(Payment.paid_at)),
    ):
        site = col(table.site_id) == site_id
        bounds += [
            select(func.min(at)).where(site).scalar_subquery(),
            select(func.max(at)).where(site).scalar_subquery(),
        ]
    row = (await session.execute(select(*bounds))).one()
    lows = [_aware(at) for at in row[0::2] if at is not None]
    highs = [_aware(at) for at in row[1::2] if at is not None]
    return (min(lows), max(highs)) if lows and highs else None


def _aware(at: datetime | str) -> datetime:
    # Scalar subqueries lose the column type on SQLite: parse the stored text there.
    instant = datetime.fromisoformat(at) if isinstance(at, str) else at
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

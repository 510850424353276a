"""The outbox: events written in the transaction of the write that caused them (CONTRACT §14).

``add_event`` inserts the row and, on PostgreSQL, a ``NOTIFY`` carrying it: PostgreSQL delivers
notifications only when the transaction commits, in commit order, to every listener on every
host, and never for a rolled-back transaction. After the commit, the session's ``OutboxSignal``
fires in this process (the webhook dispatcher and the in-process/Redis live bus wake on it).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from datasaas.storage import ids
from datasaas.storage.live_models import OutboxEvent, RealtimeVisitor, WebhookDelivery
from datasaas.storage.models import Visitor
from datasaas.storage.sql import (
    core_table,
    dialect_name,
    insert_many,
    insert_returning_ids,
)

SIGNAL_KEY: Final = "datasaas_outbox_signal"
_DIRTY_KEY: Final = "datasaas_outbox_dirty"
CHANNEL: Final = "datasaas_outbox"
"""The PostgreSQL NOTIFY channel (and the Redis pub/sub channel) of committed events."""
_CHUNK: Final = 200
"""Rows per multi-row statement (bounded parameter counts on both backends)."""
NOTIFY_LIMIT: Final = 7900
"""PostgreSQL's payload limit is 8000 bytes; larger events are announced by id only."""


class OutboxSignal:
    """Wakes this process's waiters after a transaction with outbox events committed."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def waiter(self) -> asyncio.Event:
        """A new event set on every later commit (``discard`` it when done)."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def discard(self, waiter: asyncio.Event) -> None:
        """Stop setting ``waiter``."""
        self._waiters.discard(waiter)

    def fire(self) -> None:
        """Set every waiter (called from the commit hook, on the event loop's thread)."""
        for waiter in self._waiters:
            waiter.set()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_DIRTY_KEY, False):
        signal = session.info.get(SIGNAL_KEY)
        if isinstance(signal, OutboxSignal):
            signal.fire()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_DIRTY_KEY, None)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An outbox row as the live hub and the dispatcher read it."""

    id: int
    event_id: str
    site_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The JSON announced over NOTIFY / Redis."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "site_id": self.site_id,
            "type": self.type,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StoredEvent:
        """Parse ``to_wire``'s JSON."""
        return cls(
            id=int(data["id"]),
            event_id=str(data["event_id"]),
            site_id=str(data["site_id"]),
            type=str(data["type"]),
            payload=dict(data["payload"]),
            created_at=datetime.fromisoformat(data["created_at"]),
        )


def _stored(row: OutboxEvent) -> StoredEvent:
    assert row.id is not None
    return StoredEvent(row.id, row.event_id, row.site_id, row.type, row.payload, row.created_at)


def new_event_id() -> str:
    """A stable, unique message id (the ``webhook-id`` of every delivery of the event)."""
    return "msg_" + secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An outbox event to insert."""

    site_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime


async def add_event(
    session: AsyncSession, *, site_id: str, type: str, payload: dict[str, Any], at: datetime
) -> StoredEvent:
    """Insert an outbox event in the caller's transaction (and NOTIFY it on PostgreSQL)."""
    (stored,) = await add_events(session, [NewEvent(site_id, type, payload, at)])
    return stored


async def add_events(session: AsyncSession, events: Sequence[NewEvent]) -> list[StoredEvent]:
    """Insert outbox events in the caller's transaction, in order (one ``INSERT … RETURNING``
    per chunk, and on PostgreSQL one statement for all their NOTIFYs)."""
    if not events:
        return []
    rows: list[dict[str, Any]] = [
        {
            "event_id": new_event_id(),
            "site_id": e.site_id,
            "type": e.type,
            "payload": e.payload,
            "created_at": e.created_at,
        }
        for e in events
    ]
    stored: list[StoredEvent] = []
    table = core_table(OutboxEvent)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        ids = await insert_returning_ids(session, table, chunk, natural_key=table.c.event_id)
        for new, row, row_id in zip(events[start : start + _CHUNK], chunk, ids, strict=True):
            stored.append(
                StoredEvent(
                    row_id, row["event_id"], new.site_id, new.type, new.payload, new.created_at
                )
            )
    if dialect_name(session) == "postgresql":
        wires = []
        for one in stored:
            wire = json.dumps(one.to_wire(), separators=(",", ":"))
            wires.append(wire if len(wire.encode()) <= NOTIFY_LIMIT else json.dumps({"id": one.id}))
        await session.execute(
            text(
                "SELECT pg_notify(:channel, wire) "
                "FROM unnest(CAST(:wires AS text[])) WITH ORDINALITY AS w(wire, n) ORDER BY n"
            ),
            {"channel": CHANNEL, "wires": wires},
        )
    session.info[_DIRTY_KEY] = True
    return stored


async def last_id(session: AsyncSession) -> int:
    """The newest outbox id (0 when empty)."""
    return int(await session.scalar(select(func.max(col(OutboxEvent.id)))) or 0)


async def events_after(session: AsyncSession, *, after: int, limit: int = 500) -> list[StoredEvent]:
    """Outbox events with an id above ``after``, oldest first (commit order on SQLite)."""
    rows = await session.scalars(
        select(OutboxEvent)
        .where(col(OutboxEvent.id) > after)
        .order_by(col(OutboxEvent.id))
        .limit(limit)
    )
    return [_stored(row) for row in rows]


async def get_events(session: AsyncSession, ids: Sequence[int]) -> dict[int, StoredEvent]:
    """Outbox events by id."""
    if not ids:
        return {}
    rows = await session.scalars(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids)))
    return {event.id: event for event in map(_stored, rows)}


_UNFANNED = col(OutboxEvent.fanned_out_at).is_(None)


async def has_unfanned(session: AsyncSession) -> bool:
    """Whether some event still waits to be expanded into webhook deliveries (a read)."""
    found = await session.scalar(select(col(OutboxEvent.id)).where(_UNFANNED).limit(1))
    return found is not None


@dataclass(frozen=True, slots=True)
class Unfanned:
    """What expanding an event into webhook deliveries needs of it (not its payload)."""

    id: int
    site_id: str
    type: str
    created_at: datetime


async def claim_unfanned(
    session: AsyncSession, *, now: datetime, limit: int = 200
) -> list[Unfanned]:
    """Events not yet expanded into webhook deliveries, marked expanded (caller's transaction).

    Only the columns the expansion needs are read (a payload is parsed only when delivered).
    On PostgreSQL the rows are locked with ``SKIP LOCKED``, so concurrent dispatchers on other
    workers take other rows; SQLite serialises write transactions anyway.
    """
    table = core_table(OutboxEvent)
    query = (
        select(table.c.id, table.c.site_id, table.c.type, table.c.created_at)
        .where(_UNFANNED)
        .order_by(table.c.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [Unfanned(*row) for row in (await session.execute(query)).all()]
    if rows:
        await session.execute(
            update(table).where(table.c.id.in_([row.id for row in rows])).values(fanned_out_at=now)
        )
    return rows


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Delete expanded events older than ``before`` that no delivery still needs."""
    pending = select(col(WebhookDelivery.outbox_id)).where(col(WebhookDelivery.status) == "pending")
    result = await session.execute(
        delete(OutboxEvent).where(
            col(OutboxEvent.created_at) < before,
            col(OutboxEvent.fanned_out_at).is_not(None),
            col(OutboxEvent.id).not_in(pending),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def touch_visitors(session: AsyncSession, *, site_id: str, seen: dict[str, datetime]) -> None:
    """Record each visitor's latest event instant for the realtime count (never moves back)."""
    if not seen:
        return
    rows = [{"site_id": site_id, "visitor_uid": uid, "seen_at": at} for uid, at in seen.items()]
    keep_newest = _keep_newest_sqlite if dialect_name(session) == "sqlite" else _keep_newest
    await insert_many(session, core_table(RealtimeVisitor), rows, on_conflict=keep_newest)


def _keep_newest(insert: Any, newest: Any = func.greatest) -> Any:
    table = insert.table
    return insert.on_conflict_do_update(
        index_elements=[table.c.site_id, table.c.visitor_uid],
        set_={"seen_at": newest(table.c.seen_at, insert.excluded.seen_at)},
    )


def _keep_newest_sqlite(insert: Any) -> Any:
    return _keep_newest(insert, func.max)  # SQLite's two-argument max() is greatest()


async def count_recent(session: AsyncSession, *, site_id: str, since: datetime) -> int:
    """Visitors of a site with an event at or after ``since``."""
    count = await session.scalar(
        select(func.count()).where(
            col(RealtimeVisitor.site_id) == site_id, col(RealtimeVisitor.seen_at) >= since
        )
    )
    return int(count or 0)


async def prune_visitors(session: AsyncSession, *, before: datetime) -> None:
    """Forget presence older than ``before``."""
    await session.execute(delete(RealtimeVisitor).where(col(RealtimeVisitor.seen_at) < before))


@dataclass(frozen=True, slots=True)
class FirstTouch:
    """A visitor's first-touch attributes (nulls until their first pageview)."""

    source: str | None = None
    country: str | None = None
    city: str | None = None
    browser: str | None = None
    os: str | None = None
    device_type: str | None = None


async def first_touches(
    session: AsyncSession, *, visitor_ids: Sequence[int]
) -> dict[int, FirstTouch]:
    """The first-touch attributes of visitors by integer key: remembered ones cost nothing
    (a first touch never changes once the first pageview set it), the others one statement
    per chunk."""
    found: dict[int, FirstTouch] = {}
    unknown: list[int] = []
    for key in dict.fromkeys(visitor_ids):
        known = ids.lookup_fact(session, _touch_key(key))
        if isinstance(known, FirstTouch):
            found[key] = known
        else:
            unknown.append(key)
    for start in range(0, len(unknown), _CHUNK):
        rows = await session.execute(
            select(
                col(Visitor.id),
                col(Visitor.first_pageview_at),
                col(Visitor.source),
                col(Visitor.country),
                col(Visitor.city),
                col(Visitor.browser),
                col(Visitor.os),
                col(Visitor.device_type),
            ).where(col(Visitor.id).in_(unknown[start : start + _CHUNK]))
        )
        settled: dict[ids.Key, object] = {}
        for row_key, first_pageview_at, *rest in rows.all():
            if row_key is None:
                continue
            found[row_key] = FirstTouch(*rest)
            if first_pageview_at is not None:  # set once and for all
                settled[_touch_key(row_key)] = found[row_key]
        ids.remember(session, settled)
    return found


def _touch_key(visitor_key: int) -> ids.Key:
    return ("first_touch", "", str(visitor_key))

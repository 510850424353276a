"""Committed facts that never change, kept in memory so a write need not look them up: the
integer ids of goals and visitors, and a visitor's first touch once their first pageview set it.

Every mapping only ever grows: a goal's id and a visitor's key never change, neither row is
ever deleted (only a whole site is, and its rows go with it), and a visitor's first-touch
attributes are written once, with ``first_pageview_at`` (``visitors.set_first_touches`` only
updates visitors that have none).
The one way a remembered fact could be wrong is a transaction that wrote it and then rolled
back, so facts learnt inside a transaction are *pending* until it commits (``after_commit``)
and forgotten if it rolls back. A savepoint that rolls back restores the pending set it
started with (see ``group_commit``).

The cache is per process and bounded (least recently learnt entries go first); a miss costs
the lookup it would have cost anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

from sqlalchemy import event
from sqlalchemy.orm import Session

CACHE_KEY: Final = "datasaas_ids"
PENDING_KEY: Final = "datasaas_ids_pending"
MAX_ENTRIES: Final = 200_000

Key = tuple[str, str, str]
"""(kind, site_id, name): kind is ``goal`` or ``visitor`` (an id), or ``first_touch`` (keyed
by the visitor's integer key as text, site ``""``)."""


class IdCache:
    """A bounded map of committed facts, shared by every session of one database."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._ids: OrderedDict[Key, object] = OrderedDict()
        self._max = max_entries

    def get(self, key: Key) -> object | None:
        """The committed fact of ``key``, or None."""
        return self._ids.get(key)

    def learn(self, entries: Mapping[Key, object]) -> None:
        """Remember committed facts."""
        self._ids.update(entries)
        while len(self._ids) > self._max:
            self._ids.popitem(last=False)


def cache_of(session: Session | object) -> IdCache | None:
    """The id cache of a session's database, if it has one."""
    info = getattr(session, "info", None)
    cache = info.get(CACHE_KEY) if info is not None else None
    return cache if isinstance(cache, IdCache) else None


def lookup(session: Session | object, key: Key) -> int | None:
    """A committed id from the cache (None when unknown or the session has no cache)."""
    value = lookup_fact(session, key)
    return value if isinstance(value, int) else None


def lookup_fact(session: Session | object, key: Key) -> object | None:
    """A committed fact from the cache (None when unknown or the session has no cache)."""
    cache = cache_of(session)
    return cache.get(key) if cache is not None else None


def remember(session: Session | object, entries: Mapping[Key, object]) -> None:
    """Remember facts seen in this transaction, once (and only if) it commits."""
    info = getattr(session, "info", None)
    if info is None or not entries or cache_of(session) is None:
        return
    pending: dict[Key, object] = info.setdefault(PENDING_KEY, {})
    pending.update(entries)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    cache = cache_of(session)
    if pending and cache is not None:
        cache.learn(pending)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)

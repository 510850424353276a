"""Committed integer ids of goals and visitors, kept in memory so a write need not look them up.

Both mappings only ever grow: a goal's id and a visitor's key never change and neither row is
ever deleted (only a whole site is, and its rows go with it). The one way a remembered id could
be wrong is a transaction that created the row and then rolled back, so ids learnt inside a
transaction are *pending* until it commits (``after_commit``) and forgotten if it rolls back.
A savepoint that rolls back restores the pending set it started with (see ``group_commit``).

The cache is per process and bounded (least recently learnt entries go first); a miss costs
the lookup it would have cost anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from sqlalchemy import event
from sqlalchemy.orm import Session

CACHE_KEY: Final = "datasaas_ids"
PENDING_KEY: Final = "datasaas_ids_pending"
MAX_ENTRIES: Final = 200_000

Key = tuple[str, str, str]
"""(kind, site_id, name): kind is ``goal`` or ``visitor``."""


class IdCache:
    """A bounded map of committed ids, shared by every session of one database."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._ids: OrderedDict[Key, int] = OrderedDict()
        self._max = max_entries

    def get(self, key: Key) -> int | None:
        """The committed id of ``key``, or None."""
        return self._ids.get(key)

    def learn(self, entries: dict[Key, int]) -> None:
        """Remember committed ids."""
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
    cache = cache_of(session)
    return cache.get(key) if cache is not None else None


def remember(session: Session | object, entries: dict[Key, int]) -> None:
    """Remember ids seen in this transaction, once (and only if) it commits."""
    info = getattr(session, "info", None)
    if info is None or not entries or cache_of(session) is None:
        return
    pending: dict[Key, int] = info.setdefault(PENDING_KEY, {})
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

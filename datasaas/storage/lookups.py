"""Lookups of concurrent requests, shared: one ``SELECT ... IN`` for all who are waiting.

Every request with a bearer key looks its key up (nothing is cached: a revoked key must stop at
once, in every worker), and every tracker request looks its site up. Under load that was a read
transaction per request, the costliest step of a small write after the write itself. Here the
lookups of requests that arrive together share one statement: a request that arrives while no
lookup runs starts one; requests arriving while a lookup runs wait for the next, which takes all
of them at once.

Exactness is the same as one lookup per request: a request's answer always comes from a
statement that *started after the request arrived* (the one running when it arrived is never
joined), so a revocation (or a site deleted) committed before a request arrives is always seen.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import ApiKey, Site

MAX_BATCH: Final = 500
"""Keys per statement at most (well under every backend's bound-parameter limit)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[AsyncSession, list[K]], Awaitable[dict[K, V]]]
"""Reads the rows of many keys at once; a key without a row is left out."""


@dataclass(frozen=True, slots=True)
class KeyRow:
    """What authentication needs of an ``api_key`` row."""

    id: str
    key_hash: str
    site_id: str
    scope: str
    revoked_at: datetime | None


_KEY_COLUMNS = (
    col(ApiKey.id),
    col(ApiKey.key_hash),
    col(ApiKey.site_id),
    col(ApiKey.scope),
    col(ApiKey.revoked_at),
)


async def find_keys(session: AsyncSession, digests: Sequence[str]) -> dict[str, KeyRow]:
    """The keys (revoked or not) whose secrets hash to ``digests``, by digest."""
    rows = await session.execute(select(*_KEY_COLUMNS).where(col(ApiKey.key_hash).in_(digests)))
    return {row[1]: KeyRow(*row) for row in rows.all()}


async def find_sites(session: AsyncSession, site_ids: Sequence[str]) -> dict[str, Site]:
    """The sites with these ids, by id."""
    rows = await session.scalars(select(Site).where(col(Site.id).in_(site_ids)))
    return {site.id: site for site in rows.all()}


class SharedLookups(Generic[K, V]):
    """Coalesces concurrent lookups of one process (see the module docstring)."""

    def __init__(
        self,
        read: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        fetch: Fetch[K, V],
    ) -> None:
        self._read = read
        self._fetch = fetch
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def find(self, key: K) -> V | None:
        """The row of ``key``, or None; read by a statement that starts after this call."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._runner is None or self._runner.done():
            # A context of its own: the runner outlives the request that happened to start it.
            self._runner = asyncio.create_task(self._run(), context=contextvars.Context())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[:MAX_BATCH]
            batch = {key: self._waiting.pop(key) for key in keys}
            try:
                async with self._read() as session:
                    found = await self._fetch(session, keys)
            except BaseException as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                if not isinstance(exc, Exception):  # cancelled (shutdown): fail the rest too
                    self._fail_waiting(exc)
                    raise
                continue
            for key, futures in batch.items():
                for future in futures:
                    if not future.done():  # a caller that gave up is skipped
                        future.set_result(found.get(key))

    def _fail_waiting(self, exc: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)

"""The per-request GraphQL context: database, lazily authenticated key, DataLoaders."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, NamedTuple

from fastapi import Depends
from starlette.requests import HTTPConnection, Request
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from datasaas.errors import DomainError, Unauthorized
from datasaas.filters import Dimension, Filter
from datasaas.kit.deps import get_database, request_principal
from datasaas.resolvers.breakdowns import GoalBreakdownRow, goal_breakdowns
from datasaas.resolvers.goals import CompletionKeysetPage, completion_connections
from datasaas.resolvers.sites import Principal, authenticate
from datasaas.storage.engine import Database
from datasaas.timerange import TimeRange

EMPTY_CONNECTION = CompletionKeysetPage(items=[], has_next_page=False, total_count=0)


class CompletionsKey(NamedTuple):
    """One ``Goal.completions`` page: which goal (None = never recorded), range and page."""

    goal_id: int | None
    rng: TimeRange
    first: int
    after: str | None
    site_id: str
    filters: tuple[Filter, ...]


class BreakdownKey(NamedTuple):
    """One ``Goal.breakdown``: which goal (None = never recorded), its range, filters, page."""

    goal_id: int | None
    rng: TimeRange
    site_id: str
    filters: tuple[Filter, ...]
    dimension: Dimension
    limit: int | None
    offset: int | None


class Context(BaseContext):
    """What every resolver gets: the database, the caller's key and this request's loaders."""

    def __init__(self, *, request: HTTPConnection, database: Database) -> None:
        super().__init__()
        self.database = database
        self._http_request = request
        self.connection_params: object = None
        """The ``connection_init`` payload of a WebSocket (set by Strawberry), else None."""
        self._principal: Principal | None = None
        self._auth_error: Unauthorized | None = None
        self._auth_lock = asyncio.Lock()
        self.completions_loader: DataLoader[CompletionsKey, CompletionKeysetPage] = DataLoader(
            load_fn=self._load_completions
        )
        self.breakdown_loader: DataLoader[BreakdownKey, list[GoalBreakdownRow]] = DataLoader(
            load_fn=self._load_breakdowns
        )

    async def principal(self) -> Principal:
        """Authenticate the bearer key once per request (Unauthorized when it is not valid).

        Lazy, so GraphiQL's page and refused documents cost no database work.
        """
        async with self._auth_lock:
            if self._principal is None and self._auth_error is None:
                try:
                    self._principal = await self._authenticate()
                except Unauthorized as exc:
                    self._auth_error = exc
            if self._auth_error is not None:
                raise Unauthorized(self._auth_error.message)
            assert self._principal is not None
            return self._principal

    def authorization_header(self) -> str | None:
        """The key as sent: ``connection_init``'s ``Authorization`` first, then the header."""
        if isinstance(self.connection_params, dict):
            for name, value in self.connection_params.items():
                if isinstance(name, str) and name.lower() == "authorization":
                    return value if isinstance(value, str) else None
        return self._http_request.headers.get("authorization")

    async def _authenticate(self) -> Principal:
        if isinstance(self._http_request, Request):
            return await request_principal(self._http_request)
        return await self.reauthenticate()

    async def reauthenticate(self) -> Principal:
        """Look the key up again, uncached (a subscription's periodic revocation check)."""
        async with self.database.read() as session:
            return await authenticate(session, self.authorization_header())

    async def authorize(self, site_id: str, *, write: bool = False) -> Principal:
        """Require a valid key for ``site_id`` (and Read & Write scope for ``write``)."""
        principal = await self.principal()
        principal.authorize(site_id, write=write)
        return principal

    async def _load_completions(
        self, keys: list[CompletionsKey]
    ) -> Sequence[CompletionKeysetPage | BaseException]:
        # Keys sharing (range, page, filters) are one batch: a few statements for all their goals.
        groups: defaultdict[
            tuple[TimeRange, int, str | None, str, tuple[Filter, ...]], list[CompletionsKey]
        ] = defaultdict(list)
        for key in keys:
            groups[(key.rng, key.first, key.after, key.site_id, key.filters)].append(key)
        found: dict[CompletionsKey, CompletionKeysetPage | BaseException] = {}
        async with self.database.read() as session:
            for (rng, first, after, site_id, filters), members in groups.items():
                goal_ids = [key.goal_id for key in members if key.goal_id is not None]
                try:
                    # Called even without goal ids, so `first` and `after` are checked alike.
                    pages = await completion_connections(
                        session,
                        goal_ids=goal_ids,
                        rng=rng,
                        first=first,
                        after=after,
                        site_id=site_id,
                        filters=filters,
                    )
                except DomainError as exc:
                    found.update(dict.fromkeys(members, exc))
                    continue
                for key in members:
                    found[key] = EMPTY_CONNECTION if key.goal_id is None else pages[key.goal_id]
        return [found[key] for key in keys]

    async def _load_breakdowns(
        self, keys: list[BreakdownKey]
    ) -> Sequence[list[GoalBreakdownRow] | BaseException]:
        # Keys differing only by goal are one batch: one grouped query for all their goals.
        groups: defaultdict[tuple[object, ...], list[BreakdownKey]] = defaultdict(list)
        for key in keys:
            groups[key[1:]].append(key)
        found: dict[BreakdownKey, list[GoalBreakdownRow] | BaseException] = {}
        async with self.database.read() as session:
            for members in groups.values():
                first = members[0]
                try:
                    pages = await goal_breakdowns(
                        session,
                        site_id=first.site_id,
                        goal_ids=[key.goal_id for key in members],
                        rng=first.rng,
                        dimension=first.dimension,
                        filters=first.filters,
                        limit=first.limit,
                        offset=first.offset,
                    )
                except DomainError as exc:
                    found.update(dict.fromkeys(members, exc))
                    continue
                for key in members:
                    found[key] = pages[key.goal_id]
        return [found[key] for key in keys]


async def get_context(
    request: HTTPConnection, database: Annotated[Database, Depends(get_database)]
) -> Context:
    """FastAPI dependency building the GraphQL context; never fails (auth is checked per field)."""
    return Context(request=request, database=database)

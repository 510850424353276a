"""Fixtures for the GraphQL tests: keys, a GraphQL caller, a SQL statement counter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from datasaas.resolvers.sites import IssuedKey, Scope
from datasaas.storage.engine import BACKGROUND, Database
from tests.factories import bearer, make_key, make_site

SITE = "ds_test"
OTHER_SITE = "ds_other"


@dataclass(frozen=True)
class Answer:
    """A GraphQL response: HTTP status, headers and the decoded body."""

    status: int
    headers: httpx.Headers
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        """The ``data`` member."""
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The ``errors`` member, empty when there are none."""
        return list(self.body.get("errors") or [])

    @property
    def codes(self) -> list[str]:
        """``extensions.code`` of every error."""
        return [e.get("extensions", {}).get("code") for e in self.errors]


GraphQL = Callable[..., Awaitable[Answer]]


@pytest.fixture
async def key(database: Database) -> IssuedKey:
    """A Read & Write key of ``ds_test`` (USD); ``ds_other`` exists too."""
    await make_site(database, site_id=SITE)
    await make_site(database, site_id=OTHER_SITE, domain="other.example.com")
    return await make_key(database, site_id=SITE)


@pytest.fixture
async def read_key(database: Database, key: IssuedKey) -> IssuedKey:
    """A read-only key of ``ds_test``."""
    return await make_key(database, site_id=SITE, scope=Scope.READ)


@pytest.fixture
def graphql(client: httpx.AsyncClient, key: IssuedKey, app: FastAPI) -> GraphQL:
    """POST a GraphQL operation (with the Read & Write key unless ``headers`` says otherwise).

    Waits for the background work the request left (caching activity bitmaps), so statement
    counts and the database's state after a call do not depend on timing.
    """

    async def call(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        response = await client.post(
            "/graphql", json=payload, headers=bearer(key) if headers is None else headers
        )
        await app.state.database.activity_cache.drain()
        return Answer(response.status_code, response.headers, response.json())

    return call


class StatementCounter:
    """Counts SQL statements sent by an engine while ``counting`` is on."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.counting = False

    def __call__(self, *args: Any) -> None:
        # The process's own background work (live hub, webhook dispatcher) is not the request's.
        if self.counting and not BACKGROUND.get():
            self.statements.append(str(args[2]))

    def reset(self) -> None:
        """Forget what was counted so far and start counting."""
        self.statements.clear()
        self.counting = True

    @property
    def count(self) -> int:
        """Statements counted since ``reset``."""
        return len(self.statements)


@pytest.fixture
def sql(app: FastAPI) -> Iterator[StatementCounter]:
    """A counter of the statements the app's engine executes (call ``reset`` to start)."""
    database: Database = app.state.database
    counter = StatementCounter()
    event.listen(database.engine.sync_engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", counter)

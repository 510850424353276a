"""A real GraphQL client (``gql`` over httpx) against a real ``uvicorn`` process.

The client fetches the schema by introspection and validates its documents against it, pages
through all completions of a goal with ``after`` while another task keeps inserting completions
(newer ones at the head, older ones behind the cursor), and reads refusals from non-200 answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers.goals import GoalIn
from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from tests.factories import bearer
from tests.schema.conftest import SITE

SEEDED = 60
PAGE_SIZE = 7

PAGE = """
query Page($siteId: String!, $first: Int, $after: String) {
  goal(siteId: $siteId, name: "signup", start: "2026-03-01") {
    completions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { cursor node { visitorId completedAt } }
    }
  }
}"""

CREATE_GOAL = """
mutation Create($siteId: String!, $visitor: String!) {
  createGoal(siteId: $siteId, input: {name: "signup", visitorId: $visitor}) {
    created userErrors { code }
  }
}"""


@pytest.fixture
def server(live_server: str) -> str:
    """The base URL of a real ``uvicorn`` process over the test database."""
    return live_server


@pytest.fixture
async def seeded(database: Database, key: IssuedKey) -> None:
    """``SEEDED`` signup completions in March 2026, three per instant."""
    async with database.write() as session:
        for n in range(SEEDED):
            at = f"2026-03-{1 + n // 3:02d}T12:00:00Z"
            await goal_resolvers.record_goal(
                session, site_id=SITE, goal=GoalIn("signup", f"seed-{n:03d}", completed_at=at)
            )


def _client(base: str, headers: dict[str, str]) -> Client:
    transport = HTTPXAsyncTransport(url=f"{base}/graphql", headers=headers, timeout=30)
    return Client(transport=transport, fetch_schema_from_transport=True)


async def _next(queue: asyncio.Queue[int], worker: asyncio.Task[None]) -> int:
    """The next item of ``queue``; re-raises at once if ``worker`` fails instead."""
    getter = asyncio.ensure_future(queue.get())
    finished, _ = await asyncio.wait(
        {getter, worker}, timeout=30, return_when=asyncio.FIRST_COMPLETED
    )
    if getter not in finished:
        getter.cancel()
        if worker.done():
            worker.result()
        pytest.fail("the inserter stalled")
    return getter.result()


@pytest.mark.usefixtures("seeded")
async def test_paging_with_after_while_completions_are_inserted(
    server: str, key: IssuedKey
) -> None:
    turn, done = asyncio.Queue[int](), asyncio.Queue[int]()
    inserted: list[str] = []

    async def inserter() -> None:
        """After each page: one new completion now (via GraphQL) and one in the past (REST)."""
        async with (
            _client(server, bearer(key)) as session,
            httpx.AsyncClient(base_url=server, headers=bearer(key)) as rest,
        ):
            while (page := await turn.get()) >= 0:
                visitor = f"new-{page:03d}"
                result = await session.execute(
                    GraphQLRequest(
                        CREATE_GOAL, variable_values={"siteId": SITE, "visitor": visitor}
                    )
                )
                assert result["createGoal"] == {"created": True, "userErrors": []}
                old = f"old-{page:03d}"
                response = await rest.post(
                    f"/api/v1/goals?site_id={SITE}",
                    json={
                        "name": "signup",
                        "visitor_id": old,
                        "completed_at": f"2026-03-{1 + page % 20:02d}T12:00:00Z",
                    },
                )
                assert response.status_code == 200, response.text
                inserted.extend((visitor, old))
                await done.put(page)

    writer = asyncio.create_task(inserter())
    edges: list[dict[str, Any]] = []
    try:
        async with _client(server, bearer(key)) as session:
            after: str | None = None
            for page in range(100):
                result = await session.execute(
                    GraphQLRequest(
                        PAGE, variable_values={"siteId": SITE, "first": PAGE_SIZE, "after": after}
                    )
                )
                connection = result["goal"]["completions"]
                edges += connection["edges"]
                if not connection["pageInfo"]["hasNextPage"]:
                    break
                after = connection["pageInfo"]["endCursor"]
                await turn.put(page)
                assert await _next(done, writer) == page
    finally:
        await turn.put(-1)
        await asyncio.wait_for(writer, timeout=30)

    cursors = [edge["cursor"] for edge in edges]
    visitors = [edge["node"]["visitorId"] for edge in edges]
    assert len(set(cursors)) == len(cursors), "a completion was served twice"
    assert len(set(visitors)) == len(visitors)
    seeded = {f"seed-{n:03d}" for n in range(SEEDED)}
    assert seeded <= set(visitors), f"missing: {sorted(seeded - set(visitors))}"
    times = [edge["node"]["completedAt"] for edge in edges]
    assert times == sorted(times, reverse=True)
    assert len(inserted) >= 2 * (SEEDED // PAGE_SIZE)
    # Completions stored now sort before the first page; none of them is served.
    assert not any(v.startswith("new-") for v in visitors)


@pytest.mark.usefixtures("seeded")
async def test_refusals_reach_the_client_as_graphql_errors(
    server: str, key: IssuedKey, read_key: IssuedKey
) -> None:
    async with _client(server, bearer(read_key)) as session:
        with pytest.raises(TransportQueryError) as refused:
            await session.execute(
                GraphQLRequest(CREATE_GOAL, variable_values={"siteId": SITE, "visitor": "x"})
            )
    [error] = refused.value.errors or []
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "Read & Write" in error["message"]

    transport = HTTPXAsyncTransport(url=f"{server}/graphql", timeout=30)
    async with Client(transport=transport) as anonymous:
        with pytest.raises(TransportQueryError) as unauthenticated:
            await anonymous.execute(GraphQLRequest(PAGE, variable_values={"siteId": SITE}))
    [error] = unauthenticated.value.errors or []
    assert error["extensions"]["code"] == "UNAUTHENTICATED"

"""``Goal.completions``: keyset pages, batched by a per-request DataLoader (CONTRACT §9)."""

from __future__ import annotations

from typing import Any

import pytest

from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers.goals import GoalIn
from datasaas.storage.engine import Database
from tests.schema.conftest import SITE, GraphQL, StatementCounter

GOALS_WITH_COMPLETIONS = """
query($limit: Int) {
  goals(siteId: "ds_test", start: "2026-03-01", end: "2026-03-31", limit: $limit) {
    name
    completionCount
    completions(first: 2) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { visitorId completedAt } }
    }
  }
}"""

PAGE = """
query($name: String!, $first: Int, $after: String) {
  goal(siteId: "ds_test", name: $name, start: "2026-03-01", end: "2026-03-31") {
    completionCount
    completions(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { visitorId completedAt } }
    }
  }
}"""


async def record(database: Database, *completions: tuple[str, str, str]) -> None:
    """Store (goal name, visitor id, completed_at) completions in one transaction."""
    async with database.write() as session:
        for name, visitor, completed_at in completions:
            await goal_resolvers.record_goal(
                session, site_id=SITE, goal=GoalIn(name, visitor, completed_at=completed_at)
            )


async def test_completions_of_100_goals_cost_a_constant_number_of_statements(
    graphql: GraphQL, database: Database, sql: StatementCounter
) -> None:
    await record(
        database,
        *(
            (f"goal_{g:03d}", f"v{g}_{n}", f"2026-03-{n + 10}T12:00:00Z")
            for g in range(100)
            for n in range(3)
        ),
        ("goal_000", "v_old", "2026-02-01T00:00:00Z"),  # out of range: not in totalCount
    )
    await graphql(GOALS_WITH_COMPLETIONS, {"limit": 1})  # warm the connection pool

    sql.reset()
    two = await graphql(GOALS_WITH_COMPLETIONS, {"limit": 2})
    statements_for_two = sql.count

    sql.reset()
    hundred = await graphql(GOALS_WITH_COMPLETIONS, {"limit": 100})
    statements_for_hundred = sql.count

    assert two.errors == hundred.errors == []
    goals = hundred.data["goals"]
    assert len(goals) == 100
    for goal in goals:
        connection = goal["completions"]
        assert connection["totalCount"] == goal["completionCount"] == 3
        assert connection["pageInfo"]["hasNextPage"] is True
        assert [e["node"]["completedAt"] for e in connection["edges"]] == [
            "2026-03-12T12:00:00Z",
            "2026-03-11T12:00:00Z",
        ]
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
    # The key lookup, the goal statistics and visitors, then one page query and one count for
    # all goals together (and a BEGIN per session on SQLite): as many for 100 goals as for 2.
    assert statements_for_hundred == statements_for_two
    assert statements_for_hundred <= 15, sql.statements
    pages = [s for s in sql.statements if "goal_completion.completed_at" in s.split("FROM")[0]]
    assert len(pages) == 1, pages


async def test_different_page_arguments_are_separate_batches(
    graphql: GraphQL, database: Database, sql: StatementCounter
) -> None:
    await record(database, *((f"g{g:02d}", f"v{g}", "2026-03-10T00:00:00Z") for g in range(20)))
    query = """query($limit: Int) {
      goals(siteId: "ds_test", start: "2026-03-01", end: "2026-03-31", limit: $limit) {
        one: completions(first: 1) { totalCount edges { node { visitorId } } }
        two: completions(first: 2) { totalCount edges { node { visitorId } } }
      }
    }"""
    await graphql(query, {"limit": 1})
    counts = []
    for limit in (2, 20):
        sql.reset()
        answer = await graphql(query, {"limit": limit})
        counts.append(sql.count)
        assert answer.errors == []
        assert len(answer.data["goals"]) == limit
        for goal in answer.data["goals"]:
            assert (
                goal["one"] == goal["two"] == {"totalCount": 1, "edges": [goal["one"]["edges"][0]]}
            )
    pages = [s for s in sql.statements if "goal_completion.completed_at" in s.split("FROM")[0]]
    assert len(pages) == 2  # one per distinct (first, after), whatever the number of goals
    assert counts[0] == counts[1]


async def page_through(graphql: GraphQL, name: str, first: int) -> list[dict[str, Any]]:
    """Every completion of a goal, page by page with ``after``."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        answer = await graphql(PAGE, {"name": name, "first": first, "after": after})
        assert answer.errors == [], answer.body
        connection = answer.data["goal"]["completions"]
        assert len(connection["edges"]) <= first
        nodes += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection["pageInfo"]["endCursor"]


async def test_keyset_pages_walk_every_completion_once_newest_first(
    graphql: GraphQL, database: Database
) -> None:
    # Three completions share one instant: insertion order (newest first) breaks the tie.
    await record(
        database,
        ("signup", "a", "2026-03-01T00:00:00Z"),
        ("signup", "b", "2026-03-05T08:00:00Z"),
        ("signup", "c", "2026-03-05T08:00:00Z"),
        ("signup", "d", "2026-03-05T08:00:00Z"),
        ("signup", "e", "2026-03-09T00:00:00Z"),
        ("signup", "f", "2026-04-02T00:00:00Z"),  # after the range
        ("other", "g", "2026-03-05T08:00:00Z"),
    )
    for first in (1, 2, 3, 5, 100):
        nodes = await page_through(graphql, "signup", first)
        assert [n["visitorId"] for n in nodes] == ["e", "d", "c", "b", "a"]
    answer = await graphql(PAGE, {"name": "signup", "first": 2})
    assert answer.data["goal"]["completions"]["totalCount"] == 5


async def test_default_page_is_100(graphql: GraphQL, database: Database) -> None:
    await record(
        database, *(("signup", f"v{n}", f"2026-03-{1 + n % 28:02d}T00:00:00Z") for n in range(101))
    )
    for first in (None, 100):
        answer = await graphql(PAGE, {"name": "signup", "first": first})
        connection = answer.data["goal"]["completions"]
        assert (len(connection["edges"]), connection["pageInfo"]["hasNextPage"]) == (100, True)
        assert connection["totalCount"] == 101


async def test_unknown_goal_has_an_empty_connection(graphql: GraphQL) -> None:
    answer = await graphql(PAGE, {"name": "Never Seen"})
    assert answer.data == {
        "goal": {
            "completionCount": 0,
            "completions": {
                "totalCount": 0,
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "edges": [],
            },
        }
    }


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 0}, "first: must be from 1 to 1000"),
        ({"first": 1001}, "first: must be from 1 to 1000"),
        ({"after": "not-a-cursor"}, "after: is not a cursor returned by this API"),
    ],
)
@pytest.mark.parametrize("name", ["signup", "never_seen"])
async def test_bad_page_arguments_are_bad_user_input(
    graphql: GraphQL, database: Database, variables: dict[str, Any], message: str, name: str
) -> None:
    await record(database, ("signup", "a", "2026-03-01T00:00:00Z"))
    answer = await graphql(PAGE, {"name": name, **variables})
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == message
    assert answer.errors[0]["path"] == ["goal", "completions"]

"""GraphQL over HTTP: every operation needs a key; refusals are GraphQL error bodies."""

from __future__ import annotations

import httpx
import pytest

from datasaas.resolvers.sites import IssuedKey
from tests.factories import bearer


@pytest.mark.parametrize("query", ["{ __typename }", "{ __schema { queryType { name } } }"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ds_live_" + "a" * 32}, {"Authorization": "Basic eA=="}],
    ids=["no-key", "unknown-key", "basic"],
)
async def test_every_operation_needs_a_key(
    client: httpx.AsyncClient, key: IssuedKey, query: str, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_introspection_works_with_a_key(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(key))
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{bad", "application/json", 400),
        (b'{"variables": {}}', "application/json", 400),
        (b"[" + b",".join([b'{"query": "{ __typename }"}'] * 11) + b"]", "application/json", 400),
        (b"query", "text/plain", 400),
    ],
    ids=["unreadable-json", "no-query", "11-operations", "not-json"],
)
async def test_http_refusals_are_graphql_errors(
    client: httpx.AsyncClient, key: IssuedKey, content: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={**bearer(key), "Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"]

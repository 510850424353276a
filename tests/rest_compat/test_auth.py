"""The 401/403 matrix on every /api/v1 route, and the RateLimit headers on every answer.

CONTRACT §3: a missing, malformed, unknown or revoked key is 401 with ``WWW-Authenticate: Bearer``;
a key of another site, or a site that does not exist, is 403; a read key on a POST is 403 saying
Read & Write permission is required. §10: ``RateLimit-*`` headers on every response.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from datasaas.resolvers.sites import IssuedKey, Scope, revoke_key
from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site, row_counts

SITE = "ds_test"
OTHER_SITE = "ds_other"
JSON = "application/json"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Route:
    """One REST route; ``body`` builds a fresh valid JSON body for POSTs."""

    method: str
    path: str
    body: Callable[[], dict[str, Any]] | None = None

    @property
    def writes(self) -> bool:
        return self.method == "POST"


def _goal_body() -> dict[str, Any]:
    return {"name": "signup", "visitor_id": f"v_{next(_serial)}"}


def _payment_body() -> dict[str, Any]:
    n = next(_serial)
    return {
        "visitor_id": f"v_{n}",
        "amount": 19.99,
        "currency": "USD",
        "transaction_id": f"txn_{n}",
    }


GET_ROUTES = [
    Route("GET", "/api/v1/goals"),
    Route("GET", "/api/v1/goals/signup/completions"),
    Route("GET", "/api/v1/revenue"),
    Route("GET", "/api/v1/revenue/timeseries"),
]
POST_ROUTES = [
    Route("POST", "/api/v1/goals", _goal_body),
    Route("POST", "/api/v1/payments", _payment_body),
]
ROUTES = [pytest.param(r, id=f"{r.method}-{r.path}") for r in GET_ROUTES + POST_ROUTES]
GETS = [pytest.param(r, id=f"{r.method}-{r.path}") for r in GET_ROUTES]
POSTS = [pytest.param(r, id=f"{r.method}-{r.path}") for r in POST_ROUTES]

# Each builds the Authorization header value (None: no header) from the valid secret.
BAD_AUTHORIZATION: list[Any] = [
    pytest.param(lambda s: None, id="no-header"),
    pytest.param(lambda s: "", id="empty-header"),
    pytest.param(lambda s: "Bearer", id="bearer-without-key"),
    pytest.param(lambda s: "Bearer    ", id="bearer-blank-key"),
    pytest.param(lambda s: "Basic dXNlcjpwYXNzd29yZA==", id="basic-auth"),
    pytest.param(lambda s: f"Token {s}", id="valid-key-wrong-scheme"),
    pytest.param(lambda s: s, id="valid-key-without-scheme"),
    pytest.param(lambda s: "Bearer ds_live_short", id="malformed-too-short"),
    pytest.param(lambda s: f"Bearer {s}x", id="malformed-too-long"),
    pytest.param(lambda s: "Bearer not-a-key", id="malformed-garbage"),
    pytest.param(lambda s: "Bearer " + s.replace("ds_live_", "ds_test_"), id="malformed-prefix"),
    pytest.param(lambda s: f"Bearer {s[:-1]}!", id="malformed-non-base62"),
    pytest.param(lambda s: "Bearer ds_live_" + "A" * 32, id="well-formed-unknown"),
    pytest.param(lambda s: f"Bearer {s[:-1]}{'B' if s[-1] != 'B' else 'C'}", id="one-char-off"),
]


async def call(
    client: httpx.AsyncClient,
    route: Route,
    authorization: str | None,
    *,
    site_id: str | None = SITE,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    """Send one request to ``route`` with the given Authorization header value."""
    headers: dict[str, str] = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    params = {} if site_id is None else {"site_id": site_id}
    if not route.writes:
        return await client.get(route.path, params=params, headers=headers)
    assert route.body is not None
    payload = body if body is not None else route.body()
    return await client.post(
        route.path,
        params=params,
        content=json.dumps(payload).encode(),
        headers={**headers, "Content-Type": JSON},
    )


def assert_rate_limit_headers(response: httpx.Response) -> None:
    """RateLimit-Limit/Remaining/Reset are present and coherent."""
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert name in response.headers, (name, dict(response.headers))
        assert response.headers[name].isdigit(), (name, response.headers[name])
    limit = int(response.headers["RateLimit-Limit"])
    remaining = int(response.headers["RateLimit-Remaining"])
    reset = int(response.headers["RateLimit-Reset"])
    assert limit >= 1
    assert 0 <= remaining < limit
    assert 0 <= reset <= 60


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """Assert status, envelope and RateLimit headers; return the message."""
    assert response.status_code == status, response.text
    assert "traceback" not in response.text.lower()
    body = response.json()
    assert list(body) == ["error"], body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str)
    assert len(message.strip()) >= 10, message
    assert_rate_limit_headers(response)
    return message


def assert_unauthorized(response: httpx.Response) -> str:
    """401, ``WWW-Authenticate: Bearer``, code ``unauthorized``."""
    message = assert_error(response, 401, "unauthorized")
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.split(" ", 1)[0] == "Bearer", dict(response.headers)
    return message


def assert_ok(response: httpx.Response) -> dict[str, Any]:
    """200 with the success envelope and RateLimit headers."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results", "meta"}, body
    assert_rate_limit_headers(response)
    return body


# --------------------------------------------------------------------------------------------
# 401


@pytest.mark.parametrize("route", ROUTES)
async def test_valid_key_is_accepted(
    client: httpx.AsyncClient, key: IssuedKey, route: Route
) -> None:
    """Control for the matrix: the same request with the right key succeeds."""
    assert_ok(await call(client, route, f"Bearer {key.secret}"))


@pytest.mark.parametrize("route", ROUTES)
async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, key: IssuedKey, route: Route
) -> None:
    assert_ok(await call(client, route, f"bearer {key.secret}"))


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
@pytest.mark.parametrize("route", ROUTES)
async def test_missing_or_bad_key_is_401(
    client: httpx.AsyncClient,
    key: IssuedKey,
    database: Database,
    route: Route,
    authorization: Callable[[str], str | None],
) -> None:
    before = await row_counts(database)
    response = await call(client, route, authorization(key.secret))
    message = assert_unauthorized(response)
    assert key.secret not in message
    assert await row_counts(database) == before


@pytest.mark.parametrize("route", ROUTES)
async def test_401_comes_before_input_validation(
    client: httpx.AsyncClient, key: IssuedKey, route: Route
) -> None:
    """Without a key the caller learns nothing about its parameters: 401, not 400."""
    response = await call(client, route, None, site_id=None)
    assert_unauthorized(response)


@pytest.mark.parametrize("route", ROUTES)
async def test_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route
) -> None:
    authorization = f"Bearer {key.secret}"
    assert_ok(await call(client, route, authorization))

    async with database.write() as session:
        await revoke_key(session, key_id=key.key.id)
    before = await row_counts(database)

    response = await call(client, route, authorization)
    message = assert_unauthorized(response)
    assert "revoked" in message.lower()
    assert await row_counts(database) == before


async def test_revoking_one_key_leaves_the_others_working(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    other = await make_key(database, site_id=SITE, scope=Scope.READ)
    async with database.write() as session:
        await revoke_key(session, key_id=key.key.id)
    for route in GET_ROUTES:
        assert_unauthorized(await call(client, route, f"Bearer {key.secret}"))
        assert_ok(await call(client, route, f"Bearer {other.secret}"))


# --------------------------------------------------------------------------------------------
# 403


@pytest.mark.parametrize("route", ROUTES)
async def test_key_of_another_site_is_403(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route
) -> None:
    await make_site(database, site_id=OTHER_SITE, domain="other.example.org")
    foreign = await make_key(database, site_id=OTHER_SITE)
    before = await row_counts(database)

    response = await call(client, route, f"Bearer {foreign.secret}", site_id=SITE)
    message = assert_error(response, 403, "forbidden")
    assert foreign.secret not in message
    assert await row_counts(database) == before
    # And the foreign key does work on its own site.
    assert_ok(await call(client, route, f"Bearer {foreign.secret}", site_id=OTHER_SITE))


@pytest.mark.parametrize("site_id", ["ds_missing", "ds_abc123"])
@pytest.mark.parametrize("route", ROUTES)
async def test_nonexistent_site_is_403(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route, site_id: str
) -> None:
    before = await row_counts(database)
    response = await call(client, route, f"Bearer {key.secret}", site_id=site_id)
    assert_error(response, 403, "forbidden")
    assert await row_counts(database) == before


@pytest.mark.parametrize("route", POSTS)
async def test_read_key_on_post_is_403_read_and_write(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route
) -> None:
    read = await make_key(database, site_id=SITE, scope=Scope.READ)
    before = await row_counts(database)

    response = await call(client, route, f"Bearer {read.secret}")
    message = assert_error(response, 403, "forbidden")
    assert "Read & Write" in message
    assert await row_counts(database) == before


@pytest.mark.parametrize("route", POSTS)
async def test_read_key_on_post_is_403_even_with_a_bad_body(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route
) -> None:
    """Permission is checked before the body is looked at."""
    read = await make_key(database, site_id=SITE, scope=Scope.READ)
    response = await client.post(
        route.path,
        params={"site_id": SITE},
        content=b"not json",
        headers={**bearer(read), "Content-Type": "text/plain"},
    )
    message = assert_error(response, 403, "forbidden")
    assert "Read & Write" in message


@pytest.mark.parametrize("route", GETS)
async def test_read_key_can_read(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, route: Route
) -> None:
    read = await make_key(database, site_id=SITE, scope=Scope.READ)
    body = assert_ok(await call(client, route, f"Bearer {read.secret}"))
    assert body["meta"]["site_id"] == SITE


async def test_read_key_sees_what_the_write_key_wrote(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    read = await make_key(database, site_id=SITE, scope=Scope.READ)
    written = await client.post(
        "/api/v1/goals",
        params={"site_id": SITE},
        json={"name": "signup", "visitor_id": "v_1"},
        headers=bearer(key),
    )
    assert_ok(written)
    listed = assert_ok(
        await client.get("/api/v1/goals", params={"site_id": SITE}, headers=bearer(read))
    )
    assert [(g["goal_name"], g["completion_count"]) for g in listed["results"]] == [("signup", 1)]


# --------------------------------------------------------------------------------------------
# RateLimit headers


async def test_rate_limit_remaining_counts_down_per_key(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    other = await make_key(database, site_id=SITE, scope=Scope.READ)
    path, params = "/api/v1/goals", {"site_id": SITE}
    first = await client.get(path, params=params, headers=bearer(key))
    second = await client.get(path, params=params, headers=bearer(key))
    fresh = await client.get(path, params=params, headers=bearer(other))
    for response in (first, second, fresh):
        assert_ok(response)
    assert int(second.headers["RateLimit-Remaining"]) == (
        int(first.headers["RateLimit-Remaining"]) - 1
    )
    assert int(first.headers["RateLimit-Limit"]) == int(second.headers["RateLimit-Limit"])
    # Another key has its own budget.
    assert fresh.headers["RateLimit-Remaining"] == first.headers["RateLimit-Remaining"]


async def test_rate_limit_headers_on_400(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.get(
        "/api/v1/goals", params={"site_id": SITE, "limit": "0"}, headers=bearer(key)
    )
    assert_error(response, 400, "invalid_request")


async def test_every_response_carries_rate_limit_headers(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    for method, path in (
        ("OPTIONS", "/api/events"),
        ("GET", "/api/events"),
        ("DELETE", "/api/v1/goals"),
        ("GET", "/nope"),
        ("GET", "/docs"),
        ("GET", "/healthz"),
    ):
        response = await client.request(method, path)
        assert "RateLimit-Limit" in response.headers, (method, path, response.status_code)
        assert "RateLimit-Remaining" in response.headers
        assert "RateLimit-Reset" in response.headers


async def test_health_probes_never_spend_the_budget(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    for _ in range(3):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
    assert ready.headers["RateLimit-Remaining"] == ready.headers["RateLimit-Limit"]

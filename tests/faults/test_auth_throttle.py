"""Failed authentication is throttled per client IP before any database lookup (OWASP API2/4)."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from datasaas.config import Settings
from tests.factories import bearer, make_key, make_site

BUDGET = 30
GOALS = "/api/v1/goals?site_id=ds_test"


def random_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ds_live_" + "".join(secrets.choice(alphabet) for _ in range(32))


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def attacker(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from(app, "203.0.113.9") as client:
        yield client


@pytest.fixture
def lookups(app: FastAPI) -> list[str]:
    """Every SQL statement that reads the api_key table."""
    seen: list[str] = []

    def record(*args: object) -> None:
        if "api_key" in str(args[2]):
            seen.append(str(args[2]))

    event.listen(app.state.database.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_random_keys_from_one_ip_get_429_before_any_lookup(
    app: FastAPI, attacker: httpx.AsyncClient, lookups: list[str], settings: Settings
) -> None:
    await make_site(app.state.database)
    assert settings.auth_failures_per_minute == BUDGET
    statuses = [
        (await attacker.get(GOALS, headers=bearer(random_key()))).status_code for _ in range(45)
    ]
    assert statuses == [401] * BUDGET + [429] * 15
    assert len(lookups) == BUDGET  # the refused 15 cost no database work
    refused = await attacker.get(GOALS, headers=bearer(random_key()))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # GraphQL is the same door for an attacker.
    graphql = await attacker.post(
        "/graphql", json={"query": "{ __typename }"}, headers=bearer(random_key())
    )
    assert graphql.status_code == 429
    assert graphql.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_valid_keys_are_not_slowed_by_others_failures(
    app: FastAPI, attacker: httpx.AsyncClient
) -> None:
    await make_site(app.state.database)
    key = await make_key(app.state.database)
    async with client_from(app, "198.51.100.7") as elsewhere:
        assert (await elsewhere.get(GOALS, headers=bearer(key))).status_code == 200
        # The same key, used from the attacker's address before the attack, keeps working too.
        assert (await attacker.get(GOALS, headers=bearer(key))).status_code == 200
        for _ in range(BUDGET + 5):
            await attacker.get(GOALS, headers=bearer(random_key()))
        assert (await attacker.get(GOALS, headers=bearer(random_key()))).status_code == 429
        assert (await elsewhere.get(GOALS, headers=bearer(key))).status_code == 200
        assert (await attacker.get(GOALS, headers=bearer(key))).status_code == 200
        # Another address that has not failed may still try keys.
        assert (await elsewhere.get(GOALS, headers=bearer(random_key()))).status_code == 401


async def test_a_revoked_key_is_refused_at_once_even_when_known(
    app: FastAPI, attacker: httpx.AsyncClient
) -> None:
    from datasaas.resolvers.sites import revoke_key

    await make_site(app.state.database)
    key = await make_key(app.state.database)
    assert (await attacker.get(GOALS, headers=bearer(key))).status_code == 200
    async with app.state.database.write() as session:
        await revoke_key(session, key_id=key.key.id)
    assert (await attacker.get(GOALS, headers=bearer(key))).status_code == 401

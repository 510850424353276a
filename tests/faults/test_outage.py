"""The database goes away (cut connection, exhausted pool): clean 503s, recovery, nothing lost."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from datasaas.app import create_app
from datasaas.config import Settings
from datasaas.storage.engine import Database
from datasaas.storage.faults import is_unavailable
from datasaas.storage.models import GoalCompletion
from tests.conftest import BACKENDS, GEOIP_TEST_DB
from tests.factories import bearer, make_key, make_site
from tests.faults.conftest import Server, TcpProxy

GOALS = "/api/v1/goals?site_id=ds_test"
QUERY = {"query": '{ goals(siteId: "ds_test") { name } }'}


def assert_unavailable_rest(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in response.text


def assert_unavailable_graphql(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert int(response.headers["Retry-After"]) >= 1


async def completions(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(GoalCompletion)) or 0)


@pytest.fixture
def proxied(database_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of the test's PostgreSQL, and the database URL through it."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield (
            proxy,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        )
    finally:
        proxy.close()


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
async def test_cut_database_connection_answers_503_and_recovers_without_restart(
    database: Database, proxied: tuple[TcpProxy, str], serve: list[Server]
) -> None:
    await make_site(database)
    key = await make_key(database)
    proxy, proxied_url = proxied
    server = Server(proxied_url, env={"DATASAAS_DB_CONNECT_TIMEOUT": "2"})
    serve.append(server)
    server.start()
    acknowledged: list[str] = []
    with httpx.Client(base_url=server.base, headers=bearer(key), timeout=30) as client:

        def write(visitor: str) -> httpx.Response:
            response = client.post(GOALS, json={"name": "signup", "visitor_id": visitor})
            if response.status_code == 200:
                acknowledged.append(visitor)
            return response

        for n in range(10):
            assert write(f"before_{n}").status_code == 200

        proxy.cut()
        for n in range(3):
            assert_unavailable_rest(client.get(GOALS))
            assert_unavailable_rest(write(f"during_{n}"))
            assert_unavailable_graphql(client.post("/graphql", json=QUERY))
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("failed")
        assert client.get("/healthz").status_code == 200  # the process itself is fine

        proxy.start()  # the same address answers again: no restart needed
        assert client.get("/readyz").json() == {
            "status": "ok",
            "checks": {"database": "ok", "write": "ok"},
        }
        for n in range(10):
            assert write(f"after_{n}").status_code == 200
        assert client.get(GOALS).status_code == 200
    assert len(acknowledged) == 20
    assert await completions(database) == len(acknowledged)


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
async def test_a_silent_network_answers_503_within_the_statement_timeout(
    database: Database, proxied: tuple[TcpProxy, str], serve: list[Server]
) -> None:
    await make_site(database)
    key = await make_key(database)
    proxy, proxied_url = proxied
    env = {"DATASAAS_DB_STATEMENT_TIMEOUT": "2", "DATASAAS_DB_CONNECT_TIMEOUT": "2"}
    server = Server(proxied_url, env=env)
    serve.append(server)
    server.start()
    with httpx.Client(base_url=server.base, headers=bearer(key), timeout=30) as client:
        assert client.get(GOALS).status_code == 200  # a pooled connection now exists
        proxy.freeze()
        began = time.monotonic()
        assert_unavailable_rest(client.get(GOALS))
        assert_unavailable_graphql(client.post("/graphql", json=QUERY))
        assert time.monotonic() - began < 20
        proxy.thaw()
        proxy.cut()  # the frozen connections are useless now; new ones work
        proxy.start()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.2)
        assert client.get(GOALS).status_code == 200


@pytest.fixture
async def tiny_pool_app(database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=database_url,
        geoip_db=GEOIP_TEST_DB,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout=0.5,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_exhausted_pool_answers_503_not_500(tiny_pool_app: FastAPI) -> None:
    database: Database = tiny_pool_app.state.database
    await make_site(database)
    key = await make_key(database)
    transport = httpx.ASGITransport(app=tiny_pool_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get(GOALS, headers=bearer(key))).status_code == 200
        async with database.read() as session:
            await session.execute(text("SELECT 1"))  # the pool's only connection, held
            assert_unavailable_rest(await client.get(GOALS, headers=bearer(key)))
            assert_unavailable_graphql(
                await client.post("/graphql", json=QUERY, headers=bearer(key))
            )
        assert (await client.get(GOALS, headers=bearer(key))).status_code == 200


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: goal"), False),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"), True),
        (ValueError("a bug"), False),
        (KeyError(uuid.uuid4().hex), False),
    ],
)
def test_outages_are_told_from_bugs(error: BaseException, unavailable: bool) -> None:
    wrapped = sa_exc.OperationalError("SELECT 1", {}, error)
    assert is_unavailable(error) is unavailable
    if isinstance(error, sqlite3.Error):
        assert is_unavailable(wrapped) is unavailable

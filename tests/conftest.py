"""Fixtures: one ``database`` parametrised over SQLite and PostgreSQL, apps and factories on it.

Each test gets a fresh database: a copy of a migrated SQLite template file, or a PostgreSQL
database created from a migrated template database and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from datasaas.app import create_app
from datasaas.config import Settings
from datasaas.devserver import clean_env, running_server
from datasaas.storage.engine import Database
from datasaas.storage.migrate import upgrade
from datasaas.storage.models import metadata

POSTGRES_URL = os.environ.get("DATASAAS_TEST_POSTGRES_URL", "")
GEOIP_TEST_DB = Path(__file__).parent / "data" / "GeoLite2-City-Test.mmdb"
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DATASAAS_TEST_POSTGRES_URL is not set"),
    ),
]


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _sqlalchemy_url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session, dropped at the end."""
    name = f"datasaas_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = _sqlalchemy_url(POSTGRES_URL, name)
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute("SET lock_timeout = '10s'")
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database on each backend.

    SQLite: a copy of a migrated template file. PostgreSQL: the session's database, emptied
    with one TRUNCATE (far cheaper than creating a database per test).
    """
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "datasaas.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(_truncate_all(url))
    yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh, migrated database."""
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings pointing at the test database, with the GeoIP test database."""
    return Settings(database_url=database_url, geoip_db=GEOIP_TEST_DB)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application, with its lifespan running."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process; an unhandled error is the 500 a user sees."""
    transport = httpx.ASGITransport(
        app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def live_server(database_url: str) -> Iterator[str]:
    """A real uvicorn process serving the app on the test database; yields its base URL."""
    # Only this test's settings: none of the developer's DATASAAS_* variables leak in.
    env = clean_env(
        {"DATASAAS_DATABASE_URL": database_url, "DATASAAS_GEOIP_DB": str(GEOIP_TEST_DB)}
    )
    with running_server(env) as base:
        yield base
